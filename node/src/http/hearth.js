// hearth.js: watch live rooms from a page of this node, on this node or any
// other, over one WebSocket per page (`/hearth/ws`, needs the node login).
//
//   <script src="/hearth.js"></script>
//   const w = hearth.watch('alice.os@chat:chat:sys', 'lobby', {
//     from: null,                       // last seq already seen, or null for "from now"
//     onEvent(payload, seq) { ... },    // each event once, in seq order
//     onGap(next) { ... },              // events before `next` are gone for good
//     onStatus(status, detail) { ... }, // joined | refused | offline | online |
//   });                                 // lagged | ended | reconnecting
//   w.close();
//
// All watches share the socket. When it drops, every watch hears
// "reconnecting", and the page reconnects with backoff and resumes each watch
// from the last seq it saw; the node replays what it missed (or says gap).
// "refused" and "ended" are final: that watch is over.
(function () {
  'use strict';
  // Backoff between reconnects: quick for a blip, at most 10 s for an outage.
  const BACKOFF_FIRST_MS = 250;
  const BACKOFF_MAX_MS = 10000;

  const rooms = new Map(); // "address\nroom" -> {address, room, handles: Set}
  let socket = null;
  let open = false;
  let backoff = BACKOFF_FIRST_MS;
  let timer = null;

  const keyOf = (address, room) => address + '\n' + room;
  const call = (fn, ...args) => {
    if (typeof fn !== 'function') return;
    try { fn(...args); } catch (e) { console.error('hearth.watch callback', e); }
  };

  // Where to resume a room: the oldest cursor among its watches.
  function resumeFrom(entry) {
    let from = null;
    for (const h of entry.handles) {
      if (h.cursor !== null && (from === null || h.cursor < from)) from = h.cursor;
    }
    return from;
  }

  function send(msg) {
    if (open) socket.send(JSON.stringify(msg));
  }

  function watchRoom(entry) {
    send({ watch: { address: entry.address, room: entry.room, from: resumeFrom(entry) } });
  }

  function connect() {
    timer = null;
    if (socket || rooms.size === 0) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(scheme + '//' + location.host + '/hearth/ws');
    socket = ws;
    ws.onopen = () => {
      open = true;
      for (const entry of rooms.values()) watchRoom(entry);
    };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      dispatch(msg);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      open = false;
      if (rooms.size === 0) return;
      for (const entry of rooms.values()) {
        for (const h of entry.handles) call(h.onStatus, 'reconnecting');
      }
      timer = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    };
  }

  function finish(entry) {
    rooms.delete(keyOf(entry.address, entry.room));
    for (const h of entry.handles) h.closed = true;
  }

  function dispatch(msg) {
    const body = msg.joined || msg.refused || msg.room;
    if (!body) {
      if (msg.error) console.warn('hearth /hearth/ws:', msg.error.message);
      return;
    }
    const entry = rooms.get(keyOf(body.address, body.room));
    if (!entry) return;
    if (msg.joined) {
      backoff = BACKOFF_FIRST_MS;
      for (const h of entry.handles) {
        if (h.cursor === null) h.cursor = body.next - 1;
        call(h.onStatus, 'joined', body);
      }
    } else if (msg.refused) {
      finish(entry);
      for (const h of entry.handles) call(h.onStatus, 'refused', body.error);
    } else {
      const ev = body.event;
      if (ev.event) {
        for (const h of entry.handles) {
          if (h.cursor !== null && ev.event.seq <= h.cursor) continue;
          h.cursor = ev.event.seq;
          call(h.onEvent, ev.event.payload, ev.event.seq);
        }
      } else if (ev.gap) {
        for (const h of entry.handles) {
          if (h.cursor !== null && h.cursor >= ev.gap.next - 1) continue;
          h.cursor = ev.gap.next - 1;
          call(h.onGap, ev.gap.next);
        }
      } else if (ev.lagged) {
        for (const h of entry.handles) call(h.onStatus, 'lagged', ev.lagged);
      } else if (typeof ev === 'string') {
        if (ev === 'ended') finish(entry);
        for (const h of entry.handles) call(h.onStatus, ev);
      }
    }
  }

  function watch(address, room, options) {
    const opts = options || {};
    const key = keyOf(address, room);
    let entry = rooms.get(key);
    const handle = {
      cursor: typeof opts.from === 'number' ? opts.from : null,
      onEvent: opts.onEvent,
      onGap: opts.onGap,
      onStatus: opts.onStatus,
      closed: false,
    };
    if (!entry) {
      entry = { address, room, handles: new Set() };
      rooms.set(key, entry);
    }
    entry.handles.add(handle);
    // Joining an open room: ask again, so an older cursor gets its replay.
    watchRoom(entry);
    if (!socket && !timer) connect();
    return {
      close() {
        if (handle.closed) return;
        handle.closed = true;
        entry.handles.delete(handle);
        if (entry.handles.size === 0 && rooms.get(key) === entry) {
          rooms.delete(key);
          send({ unwatch: { address, room } });
          if (rooms.size === 0 && socket) {
            const ws = socket;
            socket = null;
            open = false;
            ws.close();
          }
        }
      },
    };
  }

  window.hearth = { watch };
})();
