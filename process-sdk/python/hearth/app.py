"""`App`: what `#[app]` gives Rust, for Python. Named-argument JSON methods,
the `{"ok": ..}` / `{"error": {code, message}}` envelope and codes,
`local` / `remote` / `http` exposure, guards, timers, WebSockets, and the
state saved after each call that changed it, before the reply.

    import hearth

    app = hearth.App(state={"notes": {}})

    @app.local
    @app.remote
    def put(state, key: str, text: str) -> bool:
        state["notes"][key] = text
        return True

    @app.http("GET", "/api/notes/:key", access="public")
    def get(state, key: str):
        if key not in state["notes"]:
            raise hearth.AppError("not-found", f"no note {key}")
        return state["notes"][key]

A handler takes the state first, then `ctx` if it names a parameter so,
then its named arguments. It may be `async def` and `await` asks and
calls; the state is saved when it completes. A Python app and a Rust app
are interchangeable to their callers.
"""

from __future__ import annotations

import copy
import inspect
import json
from typing import Any, Callable, Dict, List, Optional

from . import errors, executor, log, rooms, runtime
from . import http as _http
from .address import Address
from .errors import AppError, SendError
from .message import DEFAULT_ASK_TIMEOUT_MS, Incoming, Request, respond
from .timer import sleep_ms

LOCAL, REMOTE, HTTP, INTERNAL = "local", "remote", "http", "internal"
PERSIST = ("on_change", "always", "never")
_CHECKED = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


class Ctx:
    """One request: who sent it (`caller`), how (`via`: local, remote, http
    or internal), its correlation `id`, the `method`, the logged-in `user`
    of HTTP calls, and what guards attached (`ctx.attached`)."""

    __slots__ = ("id", "caller", "via", "method", "user", "attached")

    def __init__(self, id: int, caller: Address, via: str, method: str = "",
                 user: Optional[str] = None):
        self.id = id
        self.caller = caller
        self.via = via
        self.method = method
        self.user = user
        self.attached: Dict[str, Any] = {}


class _Method:
    def __init__(self, fn: Callable):
        self.fn = fn
        self.name = fn.__name__
        self.local = self.remote = False
        self.http: List[tuple] = []
        self.guard: Optional[Callable] = None
        self.publish: Optional[tuple] = None
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY,
                                                params[0].POSITIONAL_OR_KEYWORD):
            # Raised while the module is imported, so `kit b` reports it.
            raise TypeError(f"handler `{self.name}` must take the app's state as its first "
                            f"parameter, like `def {self.name}(state, ...)`")
        params = params[1:]  # the state comes first
        self.wants_ctx = any(p.name == "ctx" for p in params)
        self.args = [p for p in params if p.name != "ctx"]
        self.takes_any = any(p.kind is p.VAR_KEYWORD for p in self.args)
        self.args = [p for p in self.args if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def exposure(self) -> str:
        ways = [w for w, on in ((LOCAL, self.local), (REMOTE, self.remote),
                                (HTTP, bool(self.http))) if on]
        return ", ".join(ways) or "none"

    def expected(self) -> str:
        parts = []
        for p in self.args:
            ann = p.annotation
            name = ann if isinstance(ann, str) else getattr(ann, "__name__", "any")
            if ann is inspect.Parameter.empty:
                name = "any"
            opt = "?" if p.default is not inspect.Parameter.empty else ""
            parts.append(f'"{p.name}"{opt}: {name}')
        return "{" + ", ".join(parts) + "}"

    def bind(self, args: Any) -> Dict[str, Any]:
        """The keyword arguments of a call, or `bad-request` saying the
        expected shape (unknown arguments are refused, as in Rust)."""
        if args is None:
            args = {}
        def bad(why: str) -> AppError:
            expected = self.expected()
            return AppError(errors.BAD_REQUEST,
                            f"arguments of `{self.name}` do not fit ({why}); expected "
                            f'{{"{self.name}": {expected}}}', {"expected": expected})
        if not isinstance(args, dict):
            raise bad("not an object of named arguments")
        known = {p.name for p in self.args}
        if not self.takes_any:
            unknown = [k for k in args if k not in known]
            if unknown:
                raise bad(f"unknown argument `{unknown[0]}`")
        for p in self.args:
            if p.name not in args:
                if p.default is inspect.Parameter.empty:
                    raise bad(f"missing argument `{p.name}`")
                continue
            want = p.annotation
            if isinstance(want, str):
                want = _CHECKED.get(want.split("|")[0].strip())
            if want in _CHECKED.values() and not _fits(args[p.name], want):
                raise bad(f"`{p.name}` must be of type {want.__name__}")
        return dict(args)


def _fits(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def envelope_ok(value: Any) -> bytes:
    return b'{"ok":' + _dumps(value) + b"}"


def envelope_error(error: AppError) -> bytes:
    try:
        return _dumps({"error": error.to_json()})
    except (TypeError, ValueError):
        return b'{"error":{"code":"internal","message":"unencodable error"}}'


class App:
    """The component's app. `state` is its initial state (any JSON value,
    or a function returning one), kept as JSON with the process's state;
    `persist` is `on_change` (saved after a call if its JSON changed),
    `always` or `never`."""

    def __init__(self, state: Any = None, persist: str = "on_change"):
        if persist not in PERSIST:
            raise ValueError(f"persist is one of {', '.join(PERSIST)}")
        self._initial = {} if state is None else state
        self.persist = persist
        self.state: Any = None
        self._saved: Optional[bytes] = None
        self.methods: Dict[str, _Method] = {}
        self._init: Optional[_Method] = None
        self._timers: List[tuple] = []
        self._ws: Dict[str, tuple] = {}
        self._ws_conns: Dict[int, str] = {}
        self._fallback: Optional[Callable] = None
        self._guard: Optional[Callable] = None
        runtime.register(self)

    # --- decorators -------------------------------------------------------

    def _method(self, fn: Callable) -> _Method:
        m = self.methods.get(fn.__name__)
        if m is None:
            m = self.methods[fn.__name__] = _Method(fn)
        return m

    def _exposer(self, way: str, fn, guard):
        def deco(f):
            m = self._method(f)
            setattr(m, way, True)
            if guard is not None:
                m.guard = guard
            return f
        return deco(fn) if fn is not None else deco

    def local(self, fn=None, *, guard=None):
        """Callable by processes on this node (and `kit i`)."""
        return self._exposer("local", fn, guard)

    def remote(self, fn=None, *, guard=None):
        """Callable by processes on other nodes."""
        return self._exposer("remote", fn, guard)

    def http(self, method: str, path: str, access: str = _http.AUTHENTICATED, guard=None):
        """Bound at `/<process-id><path>` for HTTP `method`; arguments come
        from the JSON body, `:path` parameters and the query string. The
        value is answered as JSON with 200, errors with their status."""
        method = method.upper()
        if method not in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            raise ValueError("method is one of GET, POST, PUT, DELETE, PATCH")
        _http._check_access(access)

        def deco(f):
            m = self._method(f)
            m.http.append((method, path, access))
            if guard is not None:
                m.guard = guard
            return f
        return deco

    def publish(self, room: str, action: str = "updated"):
        """After an `ok`, publish `{action, room, type, resource}` to our
        live room `room` (`{arg}` filled from the call's arguments)."""
        def deco(f):
            self._method(f).publish = (room, action)
            return f
        return deco

    def init(self, fn):
        """Run at each start, after the state is loaded: `fn(state, ctx?)`."""
        self._init = _Method(fn)
        return fn

    def timer(self, ms: int):
        """Run `fn(state)` every `ms` milliseconds."""
        def deco(f):
            self._timers.append((int(ms), _Method(f)))
            return f
        return deco

    def ws(self, path: str, access: str = _http.AUTHENTICATED):
        """WebSocket events at `path`: `fn(state, event)` with an
        `_http.WsOpen`, `http.WsMessage` or `_http.WsClose`."""
        _http._check_access(access)

        def deco(f):
            self._ws[path] = (access, f)
            return f
        return deco

    def fallback(self, fn):
        """Requests that name no method: `fn(state, msg)`; it answers them
        itself (`hearth.respond`)."""
        self._fallback = fn
        return fn

    def guard(self, fn):
        """Checked before every method: `fn(state, ctx)` raises `AppError`
        to refuse."""
        self._guard = fn
        return fn

    # --- the runtime ------------------------------------------------------

    def _hearth_init(self, our: Address) -> None:
        saved = runtime._wit.kernel().get_state() if self.persist != "never" else None
        if saved is not None:
            try:
                self.state = json.loads(saved)
            except ValueError as e:
                # Starting over would overwrite it at the first save.
                raise RuntimeError(f"the saved state is not JSON ({e}); the app stops "
                                   "rather than overwrite it") from None
            self._saved = bytes(saved)
        else:
            initial = self._initial
            self.state = initial() if callable(initial) else copy.deepcopy(initial)
        bound = set()
        for m in self.methods.values():
            for (_, path, access) in m.http:
                if path not in bound:
                    bound.add(path)
                    _http.bind(path, access)
        for path, (access, _) in self._ws.items():
            _http.bind_ws(path, access)
        for ms, m in self._timers:
            executor.spawn_task(self._timer_loop(ms, m), runtime.crash_on_error)
        if self._init is not None:
            ctx = Ctx(0, our, INTERNAL, self._init.name)
            self._run(self._init, ctx, {}, ("internal", "init"))

    async def _timer_loop(self, ms: int, m: _Method):
        while True:
            await sleep_ms(ms)
            ctx = Ctx(0, runtime.our(), INTERNAL, m.name)
            value, error = None, None
            try:
                value = m.fn(self.state, **({"ctx": ctx} if m.wants_ctx else {}))
                if inspect.iscoroutine(value):
                    value = await value
            except (AppError, SendError) as e:
                error = e
            self._complete(value, error, m, {}, ("internal", "timer"))

    def _hearth_request(self, msg: Incoming) -> None:
        if _http.is_from_server(msg):
            event = _http.event(msg)
            if event is not None:
                return self._on_http(msg, event)
        via = LOCAL if msg.source.node == runtime.our().node else REMOTE
        answer = ("message", msg.id, msg.expects_response is not None)
        try:
            call = json.loads(msg.body)
        except ValueError as e:
            call = None
            why = f"the body is not JSON ({e}); "
        else:
            why = ""
        if not (isinstance(call, dict) and len(call) == 1):
            return self._fallback_or(msg, AppError(
                errors.BAD_REQUEST,
                why + 'expected a JSON object with one key naming the method and an object '
                'of named arguments, like {"method": {"arg": 1}}'))
        (name, args), = call.items()
        m = self.methods.get(name)
        if m is None:
            names = self.callable_names()
            return self._fallback_or(msg, AppError(
                errors.UNKNOWN_METHOD, f"no method `{name}`; methods: {', '.join(names)}",
                names))
        allowed = m.local if via == LOCAL else m.remote
        if not allowed:
            return self._send(answer, AppError(
                errors.NOT_ALLOWED,
                f"`{name}` cannot be called {via}; it is callable: {m.exposure()}"))
        self._run(m, Ctx(msg.id, msg.source, via, name), args, answer)

    def callable_names(self) -> List[str]:
        return sorted(n for n, m in self.methods.items() if m.local or m.remote)

    def _hearth_response(self, msg: Incoming) -> None:
        log.debug(f"response {msg.id} awaited by no one; dropped")

    def _hearth_failure(self, failure) -> None:
        log.warn(f"request {failure.id} failed: {failure.error}")

    def _fallback_or(self, msg: Incoming, error: AppError) -> None:
        if self._fallback is not None:
            result = self._fallback(self.state, msg)
            if inspect.iscoroutine(result):
                executor.spawn_task(result, runtime.crash_on_error)
            return
        self._send(("message", msg.id, msg.expects_response is not None), error)

    def _on_http(self, msg: Incoming, event) -> None:
        if isinstance(event, _http.HttpRequest):
            return self._on_http_request(event)
        if isinstance(event, _http.WsOpen):
            if event.path in self._ws:
                self._ws_conns[event.conn] = event.path
            path = event.path
        elif isinstance(event, _http.WsClose):
            path = self._ws_conns.pop(event.conn, None)
        else:
            path = self._ws_conns.get(event.conn)
        handler = self._ws.get(path) if path is not None else None
        if handler is None:
            return log.warn(f"WebSocket event for no @app.ws handler: {event!r}"[:300])
        m = _Method(handler[1])
        self._run(m, Ctx(0, _http.server(), INTERNAL, m.name), {"event": event},
                  ("internal", "ws"), positional=True)

    def _on_http_request(self, req: _http.HttpRequest) -> None:
        answer = ("http", req.id)
        same_path = [(m, verb) for m in self.methods.values() for (verb, path, _) in m.http
                     if path == req.bound_path]
        found = [m for (m, verb) in same_path if verb == req.method.upper()]
        if not found:
            if same_path:
                error = AppError(errors.NOT_ALLOWED,
                                 f"{req.bound_path} is not bound for {req.method}")
            else:
                error = AppError(errors.UNKNOWN_METHOD, f"nothing bound at {req.bound_path}")
            return self._send(answer, error)
        args: Any = {}
        if req.body.strip():
            try:
                args = json.loads(req.body)
            except ValueError:
                args = None
            if not isinstance(args, dict):
                return self._send(answer, AppError(
                    errors.BAD_REQUEST, "the body must be a JSON object of named arguments"))
        for key, value in list(req.params.items()) + list(req.query.items()):
            args.setdefault(key, value)
        m = found[0]
        self._run(m, Ctx(req.id, _http.server(), HTTP, m.name, req.user), args, answer)

    def _run(self, m: _Method, ctx: Ctx, args: Any, answer: tuple,
             positional: bool = False) -> None:
        """Guard, bind the arguments, call; then save and answer (at once,
        or when an async handler completes)."""
        try:
            if self._guard is not None and ctx.via != INTERNAL:
                self._guard(self.state, ctx)
            if m.guard is not None:
                m.guard(self.state, ctx)
            if positional:
                call_args, kwargs = list(args.values()), {}
            else:
                call_args, kwargs = [], m.bind(args)
            if m.wants_ctx:
                kwargs["ctx"] = ctx
            result = m.fn(self.state, *call_args, **kwargs)
        except (AppError, SendError) as e:
            return self._complete(None, e, m, args, answer)
        if inspect.iscoroutine(result):
            executor.spawn_task(
                result, lambda value, error: self._complete(value, error, m, args, answer))
        else:
            self._complete(result, None, m, args, answer)

    def _complete(self, value, error, m: _Method, args, answer) -> None:
        if isinstance(error, SendError):
            error = AppError.from_send(error)
        elif error is not None and not isinstance(error, AppError):
            runtime.crash(error)  # an exception the handler did not expect
        saved = self._save()
        if error is None and saved is not None:
            log.error(f"state not saved: {saved}")
            error = AppError(errors.STATE_NOT_SAVED, saved)
        if error is None and m.publish is not None:
            self._publish(m, args, value)
        self._send(answer, error if error is not None else value)

    def _save(self) -> Optional[str]:
        """Save the state per the policy; the reason if it failed."""
        if self.persist == "never":
            return None
        try:
            data = _dumps(self.state)
        except (TypeError, ValueError) as e:
            return f"the state does not encode as JSON: {e}"
        if self.persist == "on_change" and data == self._saved:
            return None
        try:
            runtime._wit.kernel().set_state(data)
        except Exception as e:
            return str(getattr(e, "value", e))
        self._saved = data
        return None

    def _publish(self, m: _Method, args, value) -> None:
        room_fmt, action = m.publish
        try:
            room = room_fmt.format(**(args if isinstance(args, dict) else {}))
            rooms.publish(room, {"action": action, "room": room, "type": m.name,
                                 "resource": value})
        except (KeyError, IndexError, SendError) as e:
            log.warn(f"@app.publish to {room_fmt} failed: {e}")

    def _send(self, answer: tuple, reply) -> None:
        error = reply if isinstance(reply, AppError) else None
        try:
            if answer[0] == "message":
                _, id, expects = answer
                if not expects:
                    if error is not None:
                        log.warn(f"call without an asker failed: {error}")
                    return
                respond(id, envelope_error(error) if error else self._encode_ok(reply))
            elif answer[0] == "http" and isinstance(reply, _http.Reply):
                _http.answer(answer[1], reply.status, reply.headers, reply.body)
            elif answer[0] == "http":
                if error is None:
                    try:
                        body = _dumps(reply)
                    except (TypeError, ValueError) as e:
                        error = AppError(errors.INTERNAL, f"reply does not encode: {e}")
                if error is not None:
                    _http.answer(answer[1], error.http_status(),
                                {"content-type": "application/json"}, envelope_error(error))
                else:
                    _http.answer(answer[1], 200, {"content-type": "application/json"}, body)
            elif error is not None:
                log.error(f"{answer[1]} handler failed: {error}")
        except SendError as e:
            log.warn(f"could not answer: {e}")

    @staticmethod
    def _encode_ok(value) -> bytes:
        if isinstance(value, _http.Reply):
            value = value.body.decode("utf-8", errors="replace")
        try:
            return envelope_ok(value)
        except (TypeError, ValueError) as e:
            return envelope_error(AppError(errors.INTERNAL, f"reply does not encode: {e}"))


async def call(target, method: str, timeout_ms: int = DEFAULT_ASK_TIMEOUT_MS, **args) -> Any:
    """Call `method` of the app at `target` (Python or Rust) with named
    `args`; returns its `ok` value. Raises `AppError` for its error reply
    (`bad-reply` if the reply is not an envelope) and `SendError` when the
    request failed."""
    reply = await Request.to(target).json({method: args}).timeout_ms(timeout_ms).ask()
    try:
        value = json.loads(reply.body)
    except ValueError:
        raise AppError(errors.BAD_REPLY, f"not JSON: {reply.text()[:200]}") from None
    if isinstance(value, dict) and len(value) == 1:
        if "ok" in value:
            return value["ok"]
        if "error" in value:
            raise AppError.from_json(value["error"])
    raise AppError(errors.BAD_REPLY, f"not an envelope: {reply.text()[:200]}")
