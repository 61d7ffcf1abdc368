"""The Python test probe (tests/tests/e2e/python.rs): an `App` whose
methods echo, call other apps (Python or Rust) and report typed errors,
count in durable state, and misbehave on demand (raise, spin, hog)."""

import hearth
from hearth import AppError, SendError

app = hearth.App(state={"count": 0})


@app.local
@app.remote
def echo(state, message):
    """Answers `message`; the message "refuse" gets a typed error."""
    if message == "refuse":
        raise AppError("refused", "the Python probe refuses", {"by": str(hearth.our())})
    return message


@app.local
@app.remote
async def call(state, target: str, method: str, args: dict, timeout_ms: int = 10_000):
    """Calls `method` of the app at `target` and reports what came back:
    `{"ok": value}`, `{"code", "message", "details"}` for its typed error,
    or `{"kind", "detail"}` when the request failed."""
    try:
        value = await hearth.call(target, method, timeout_ms=timeout_ms, **args)
    except AppError as e:
        return {"code": e.code, "message": e.message, "details": e.details}
    except SendError as e:
        return {"kind": e.kind, "detail": e.detail}
    return {"ok": value}


@app.local
async def call_raw(state, target: str, method: str, args: dict):
    """Like `call`, but lets errors escape: a `SendError` becomes the error
    reply with its kind as the code, an `AppError` passes through."""
    return await hearth.call(target, method, **args)


@app.local
@app.remote
def bump(state, by: int = 1) -> int:
    state["count"] += by
    return state["count"]


@app.local
def count(state) -> int:
    return state["count"]


def _deeper(what: str):
    raise ValueError(f"python says no to {what}")


@app.local
def explode(state, what: str = "this"):
    """An exception the handler did not expect: the process crashes with
    its traceback."""
    _deeper(what)


@app.local
def spin(state):
    n = 0
    while True:
        n += 1


@app.local
def hog(state):
    chunks = []
    while True:
        chunks.append(bytearray(1024 * 1024))


@app.local
async def bench_echo(state, target: str, count: int, body_bytes: int = 0) -> dict:
    """Times `count` sequential calls of `echo` at `target` (Python or
    Rust); nanoseconds, for `kit bench python`."""
    import time

    message = "x" * body_bytes
    samples = []
    for _ in range(count):
        sent = time.perf_counter_ns()
        await hearth.call(target, "echo", message=message)
        samples.append(time.perf_counter_ns() - sent)
    samples.sort()
    return {"count": count, "p50_ns": samples[len(samples) // 2] if samples else 0}
