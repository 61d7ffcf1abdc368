// The chat's HTTP API on our own node: the client `kit b` generates
// (`chat.js`, a copy of `apps/chat/api/chat.js`; a test checks they match),
// with what a page adds: a node that cannot be reached becomes a typed
// `network` error, and a lapsed login goes back to the login page. Every
// call resolves to the plain value, or throws a ChatError (the generated
// HearthError) with the app's typed code (`too-long`, `rate-limited`, ...).

import * as chat from './chat.js';

export const ChatError = chat.HearthError;

function guarded(call) {
  return async (args) => {
    try {
      return await call(args);
    } catch (e) {
      if (!(e instanceof ChatError)) {
        if (!(e instanceof TypeError)) throw e;
        throw new ChatError('network', 'Our node cannot be reached. Is it running?', 0);
      }
      if (e.status === 401) {
        location.href = '/login?next=' + encodeURIComponent(location.pathname);
      }
      throw e;
    }
  };
}

/** Every generated call, by the method's name (`create_room`, `send`, ...). */
export const api = Object.fromEntries(
  Object.entries(chat)
    .filter(([name, f]) => typeof f === 'function' && f !== ChatError && !name.startsWith('watch_'))
    .map(([name, f]) => [name, guarded(f)]),
);

/**
 * When a refusal made at `since` (ms) may be tried again: a rate limit's
 * `retry_ms` later (in a thrown error's `details`, or on a failed message's
 * `error`); null for any other refusal, or one without a wait.
 */
export function retryAt(error, since = Date.now()) {
  if (!error || error.code !== 'rate-limited') return null;
  const ms = error.retry_ms || (error.details && error.details.retry_ms);
  return ms ? since + ms : null;
}

/** The rate limit's words at `now`, for a wait that ends at `at`: counting down, then "now". */
export function slowDown(at, now = Date.now()) {
  const s = Math.ceil((at - now) / 1000);
  return `Slow down: at most 30 messages a minute. ${s > 0 ? `Try again in ${s} s.` : 'You can try again now.'}`;
}

/**
 * What to tell a person for each typed refusal; a rate limit's wait is
 * counted from `since`, when the refusal was made (see `slowDown`).
 */
export function explain(error, since = Date.now(), now = Date.now()) {
  const code = error && error.code;
  switch (code) {
    case 'empty-message': return 'Write something first (or attach a file).';
    case 'too-long': return error.message.replace(/^the message/, 'Your message');
    case 'rate-limited': {
      const at = retryAt(error, since);
      return at ? slowDown(at, now) : `Slow down: ${error.message}.`;
    }
    case 'not-member': return `You are not a member of this room. ${error.message}`;
    case 'forbidden': return `Your role does not allow that. ${error.message}`;
    case 'unknown-room': return `There is no such room. ${error.message}`;
    case 'not-invited': return error.message.charAt(0).toUpperCase() + error.message.slice(1) + '.';
    default: return (error && error.message) ? error.message.charAt(0).toUpperCase() + error.message.slice(1) : String(error);
  }
}
