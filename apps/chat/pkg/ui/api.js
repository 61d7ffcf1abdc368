// The chat's HTTP API on our own node, the same calls as the generated
// client `apps/chat/api/chat.ts` (kit b), written as plain JS so the page
// needs no build step. Every call resolves to the plain value, or throws a
// ChatError with the app's typed code (`too-long`, `rate-limited`, ...).

export class ChatError extends Error {
  constructor(code, message, status, details) {
    super(message);
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

/** `/<process-id>`: the first segment of the page's path. */
export const base = '/' + location.pathname.split('/')[1];

async function call(method, path, args) {
  const init = { method, headers: { 'content-type': 'application/json' } };
  if (method !== 'GET') init.body = JSON.stringify(args || {});
  let response;
  try {
    response = await fetch(base + path, init);
  } catch (e) {
    throw new ChatError('network', 'Our node cannot be reached. Is it running?', 0);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401) {
      location.href = '/login?next=' + encodeURIComponent(location.pathname);
    }
    const e = (body && body.error) || { code: 'http-' + response.status, message: response.statusText || 'request failed' };
    throw new ChatError(e.code, e.message, response.status, e.details);
  }
  return body;
}

const post = (path) => (args) => call('POST', path, args);

export const api = {
  me: () => call('GET', '/api/me'),
  setProfile: post('/api/profile'),       // {display_name, color}
  rooms: () => call('GET', '/api/rooms'),
  createRoom: post('/api/rooms'),         // {name, kind}
  openDirect: post('/api/direct'),        // {node}
  join: post('/api/join'),                // {address}
  leave: post('/api/leave'),              // {room}
  decline: post('/api/decline'),          // {room}
  invite: post('/api/invite'),            // {room, node}
  removeMember: post('/api/remove'),      // {room, node}
  setRole: post('/api/role'),             // {room, node, role}
  rename: post('/api/rename'),            // {room, name}
  members: post('/api/members'),          // {room}
  messages: post('/api/messages'),        // {room, limit, before_id}
  send: post('/api/send'),                // {room, text, reply_to, attachment}
  edit: post('/api/edit'),                // {room, id, text}
  remove: post('/api/delete'),            // {room, id}
  react: post('/api/react'),              // {room, id, emoji}
  markRead: post('/api/read'),            // {room, id}
  typing: post('/api/typing'),            // {room}
  retry: post('/api/retry'),              // {room, client_id}
  discard: post('/api/discard'),          // {room, client_id}
  upload: post('/api/upload'),            // {name, mime, data}
  attachment: post('/api/attachment'),    // {node, id}
  publicRooms: post('/api/public'),       // {node}
};

/** What to tell a person for each typed refusal. */
export function explain(error) {
  const code = error && error.code;
  switch (code) {
    case 'empty-message': return 'Write something first (or attach a file).';
    case 'too-long': return error.message.replace(/^the message/, 'Your message');
    case 'rate-limited': {
      const ms = error.details && error.details.retry_ms;
      return ms ? `Slow down: at most 30 messages a minute. Try again in ${Math.ceil(ms / 1000)} s.` : `Slow down: ${error.message}.`;
    }
    case 'not-member': return `You are not a member of this room. ${error.message}`;
    case 'forbidden': return `Your role does not allow that. ${error.message}`;
    case 'unknown-room': return `There is no such room. ${error.message}`;
    case 'not-invited': return error.message.charAt(0).toUpperCase() + error.message.slice(1) + '.';
    default: return (error && error.message) ? error.message.charAt(0).toUpperCase() + error.message.slice(1) : String(error);
  }
}
