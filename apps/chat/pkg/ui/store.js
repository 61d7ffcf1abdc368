// What the page knows: our profile, the rooms, the loaded messages of each
// room, members, typing. Changes come from HTTP answers and from the `view`
// room's events, both upserts, so seeing one twice is harmless.

export const TYPING_MS = 4000;
/**
 * How many of our discarded messages (by client id) a page remembers, and
 * how many refusals' times: the oldest are forgotten first.
 */
export const REMEMBERED = 500;

export function newStore() {
  return {
    me: null,                 // Profile
    rooms: new Map(),         // address -> RoomSummary
    current: null,            // address of the open room
    threads: new Map(),       // address -> Thread
    members: new Map(),       // address -> Member[]
    typing: new Map(),        // address -> Map(node -> until ms)
    // Client ids of our messages discarded here or on our other pages
    // (the `discarded` event reaches each): a late copy of one while it
    // waited (a send's or retry's answer, an event) is not shown again.
    discarded: new Set(),
    // client id -> {sent_at, at}: when this page first saw the host's
    // refusal of that send, which a rate limit's wait counts from.
    refused: new Map(),
  };
}

/** The loaded part of one room's history. */
function newThread() {
  return { byKey: new Map(), ids: new Map(), clients: new Map(), hasMore: true, loaded: false, loadingOlder: false };
}

export function thread(store, address) {
  let t = store.threads.get(address);
  if (!t) { t = newThread(); store.threads.set(address, t); }
  return t;
}

let nextKey = 1;

/**
 * Insert or replace a message. One message is one entry whether it comes
 * by its client id (ours while pending, or an event) or by its host id (a
 * history page), in any order.
 */
export function upsertMessage(store, m, now = Date.now()) {
  const t = thread(store, m.room);
  // Discarding is final: only the host's numbered copy (it was sent before
  // the discard reached our node) may still show the message.
  if (!(m.id > 0) && m.client_id && store.discarded.has(m.client_id)) return t;
  const byClient = m.client_id ? t.clients.get(m.client_id) : undefined;
  const byId = m.id > 0 ? t.ids.get(m.id) : undefined;
  const key = byClient || byId || `k${nextKey++}`;
  // A late answer, event or history page must not undo what a newer copy
  // shows (see `isOlder`). Two entries may be known for it (ours by client
  // id, a history page's by host id) until this copy joins them: the
  // newest of all three stays.
  let newest = m;
  for (const k of new Set([byClient, byId])) {
    const known = k && t.byKey.get(k);
    if (known && isOlder(newest, known)) newest = known;
  }
  if (byClient && byId && byClient !== byId) t.byKey.delete(byId);
  t.byKey.set(key, newest);
  for (const c of [m, newest]) {
    if (c.client_id) t.clients.set(c.client_id, key);
    if (c.id > 0) t.ids.set(c.id, key);
  }
  if (newest.delivery === 'failed' && newest.client_id) {
    const seen = store.refused.get(newest.client_id);
    // A retry sends it again later: its refusal is a new one.
    if (!seen || seen.sent_at !== newest.sent_at) remember(store.refused, newest.client_id, { sent_at: newest.sent_at, at: now });
  }
  return t;
}

/** Add to a Map or Set, forgetting the oldest past `REMEMBERED`. */
function remember(memory, key, value) {
  memory.delete(key);
  if (memory instanceof Set) memory.add(key);
  else memory.set(key, value);
  while (memory.size > REMEMBERED) memory.delete(memory.keys().next().value);
}

/**
 * When this page first saw the host refuse `m` (ours, failed), in ms: a
 * rate limit's `retry_ms` counts from then. A page opened later sees it
 * later, so it may say to wait longer than needed, never too little.
 */
export function refusedAt(store, m, now = Date.now()) {
  const seen = m.client_id && store.refused.get(m.client_id);
  return seen && seen.sent_at === m.sent_at ? seen.at : now;
}

/**
 * Whether `m` is an older copy of the message `known`. One the host has not
 * numbered is older than one it has (ours while pending). Of two the host
 * numbered, the lower `version` (the room's event number of the last send,
 * edit, delete or reaction) is older; copies stored before versions (0)
 * fall back on: a deletion is never undone, edits only move forward. Of
 * two of ours still waiting, the one sent earlier is older (a retry sends
 * it again later), and a pending copy is older than the failed one it
 * became.
 */
export function isOlder(m, known) {
  if (known.id > 0 && !(m.id > 0)) return true;
  if (!(known.id > 0)) {
    if (m.id > 0) return false;
    if (m.sent_at !== known.sent_at) return m.sent_at < known.sent_at;
    return known.delivery === 'failed' && m.delivery === 'pending';
  }
  if (known.version > 0 && m.version > 0) return m.version < known.version;
  if (Boolean(known.deleted) !== Boolean(m.deleted)) return Boolean(known.deleted);
  return (known.edited_at || 0) > (m.edited_at || 0);
}

/**
 * Drop one of our pending or failed messages, for good: a late copy of it
 * is not shown again (see `upsertMessage`).
 */
export function dropPending(store, address, clientId) {
  remember(store.discarded, clientId);
  store.refused.delete(clientId);
  const t = thread(store, address);
  const key = t.clients.get(clientId);
  if (key) { t.byKey.delete(key); t.clients.delete(clientId); }
}

/** Messages of a thread in order: by host id, then ours still waiting. */
export function ordered(t) {
  const all = [...t.byKey.values()];
  const sent = all.filter((m) => m.id > 0).sort((a, b) => a.id - b.id);
  const waiting = all.filter((m) => !(m.id > 0)).sort((a, b) => a.sent_at - b.sent_at);
  return sent.concat(waiting);
}

export function oldestId(t) {
  let min = null;
  for (const m of t.byKey.values()) if (m.id > 0 && (min === null || m.id < min)) min = m.id;
  return min;
}

export function newestId(t) {
  let max = 0;
  for (const m of t.byKey.values()) if (m.id > max) max = m.id;
  return max;
}

export function findMessage(store, address, id) {
  const t = store.threads.get(address);
  const key = t && t.ids.get(id);
  return key ? t.byKey.get(key) : undefined;
}

/** Rooms for the sidebar: joined rooms and DMs by latest activity, and invitations. */
export function sidebar(store, filter = '') {
  const f = filter.trim().toLowerCase();
  const all = [...store.rooms.values()].filter((r) => !f || r.name.toLowerCase().includes(f)
    || (r.peer || '').includes(f) || r.address.includes(f));
  const when = (r) => (r.last_message ? r.last_message.sent_at : 0);
  all.sort((a, b) => when(b) - when(a) || a.name.localeCompare(b.name));
  return {
    invites: all.filter((r) => r.role === null || r.role === undefined),
    rooms: all.filter((r) => r.role && r.kind !== 'direct'),
    dms: all.filter((r) => r.role && r.kind === 'direct'),
  };
}

export function memberOf(store, address, node) {
  return (store.members.get(address) || []).find((m) => m.node === node);
}

/** Members as shown: we are online (or away) while this page is open, whatever the host last heard. */
export function withOurPresence(members, our, hidden) {
  return members.map((m) => (m.node === our ? { ...m, presence: hidden ? 'away' : 'online' } : m));
}

export function setTyping(store, address, node, now = Date.now()) {
  let m = store.typing.get(address);
  if (!m) { m = new Map(); store.typing.set(address, m); }
  m.set(node, now + TYPING_MS);
}

/** `node`'s message arrived: what it was typing is sent, so it no longer types. */
export function stopTyping(store, address, node) {
  const m = store.typing.get(address);
  return Boolean(m && m.delete(node));
}

export function typingNow(store, address, now = Date.now()) {
  const m = store.typing.get(address);
  if (!m) return [];
  for (const [node, until] of m) if (until <= now) m.delete(node);
  return [...m.keys()];
}
