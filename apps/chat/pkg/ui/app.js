// The chat page. It talks only to its own node: HTTP calls (api.js), one
// live room `view` watched through the node's /hearth.js (every change the
// page shows arrives there; nothing is polled), and one presence socket.

import { api, explain } from './api.js';
import { el, $, avatar, colourOf, safeColour, SWATCHES, bytes } from './util.js';
import * as S from './store.js';
import { renderMessages, attachmentView, closePicker } from './messages.js';
import { Composer } from './composer.js';

const our = window.our;
const PAGE = 50;
/** Largest file the node takes (2 MiB before base64). */
const MAX_UPLOAD = 2 * 1024 * 1024;
/** How long an error stays above the composer. */
const ERROR_MS = 8000;

const store = S.newStore();
const app = $('app');
let filter = '';

// ---------- Live: the `view` room and presence ----------

function setLive(state) {
  const live = $('live');
  live.textContent = { joined: 'live', reconnecting: 'reconnecting…', offline: 'offline', connecting: 'connecting' }[state] || state;
  live.className = 'live ' + (state === 'joined' ? 'on' : state === 'connecting' ? '' : 'off');
  app.dataset.live = state;
}

/** Whether the view was joined before: a later join reloads what we missed. */
let joinedOnce = false;

function watchView() {
  setLive('connecting');
  window.hearth.watch(`${our.node}@${our.process}`, 'view', {
    onEvent: (payload) => onView(payload),
    // Events before `next` are gone: load the state again.
    onGap: () => reloadAll(),
    onStatus: (status) => {
      if (status === 'joined') {
        setLive('joined');
        if (joinedOnce) reloadAll();
        joinedOnce = true;
      } else if (status === 'reconnecting' || status === 'offline') {
        setLive('reconnecting');
      } else if (status === 'refused' || status === 'ended') {
        // Our node restarted (ended) or turned us away: watch anew.
        setLive('offline');
        setTimeout(watchView, status === 'ended' ? 200 : 2000);
      }
    },
  });
}

function onView(ev) {
  switch (ev.type) {
    case 'message': {
      const m = ev.message;
      const t = S.thread(store, m.room);
      const known = (m.id > 0 && t.ids.has(m.id)) || (m.client_id && t.clients.has(m.client_id));
      S.upsertMessage(store, m);
      const typed = !known && S.stopTyping(store, m.room, m.from);
      if (m.room === store.current) {
        if (typed) renderTyping();
        roomChanged({ newMessage: m });
        // The list is redrawn whole; screen readers hear only what is new.
        if (!known && m.from !== our.node && m.kind !== 'system') {
          $('announce').textContent = `${nameOf(m.room, m.from)}: ${m.text || (m.attachment ? m.attachment.name : '')}`;
        }
      }
      break;
    }
    case 'discarded':
      S.dropPending(store, ev.address, ev.client_id);
      if (ev.address === store.current) scheduleMessages();
      break;
    case 'room':
      store.rooms.set(ev.room.address, ev.room);
      renderSidebar();
      if (ev.room.address === store.current) renderHeader();
      break;
    case 'room_gone':
      store.rooms.delete(ev.address);
      store.threads.delete(ev.address);
      if (store.current === ev.address) {
        toast(ev.reason ? `You left the room: ${ev.reason}` : 'You are no longer in this room.');
        openRoom(null);
      }
      renderSidebar();
      break;
    case 'members':
      store.members.set(ev.address, S.withOurPresence(ev.members, our.node, document.hidden));
      if (ev.address === store.current) { renderMembers(); renderHeader(); scheduleMessages(); }
      renderSidebar();
      break;
    case 'presence': {
      const m = S.memberOf(store, ev.address, ev.node);
      if (m && ev.node !== our.node) m.presence = ev.presence;
      if (ev.address === store.current) { renderMembers(); scheduleMessages(); }
      renderSidebar();
      break;
    }
    case 'typing':
      if (ev.node === our.node) break;
      S.setTyping(store, ev.address, ev.node);
      if (ev.address === store.current) renderTyping();
      break;
    case 'profile':
      store.me = ev.profile;
      renderMe();
      break;
    default:
      break;
  }
}

/** One socket while the page is open: `online`, or `away` when hidden. */
function presence() {
  let backoff = 500;
  const connect = () => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/${our.process}/presence`);
    const say = () => { if (ws.readyState === 1) ws.send(document.hidden ? 'away' : 'online'); };
    ws.onopen = () => { backoff = 500; say(); };
    document.addEventListener('visibilitychange', say);
    ws.onclose = () => {
      document.removeEventListener('visibilitychange', say);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  };
  connect();
}

// ---------- Loading ----------

async function reloadAll() {
  try {
    const [me, rooms] = await Promise.all([api.me(), api.rooms()]);
    store.me = me;
    store.rooms = new Map(rooms.map((r) => [r.address, r]));
    renderMe();
    renderSidebar();
    if (store.current && store.rooms.has(store.current)) {
      await loadLatest(store.current);
      loadMembers(store.current);
    } else if (store.current) {
      openRoom(null);
    }
  } catch (e) {
    toast(explain(e));
  }
}

async function loadLatest(address) {
  const page = await api.messages({ room: address, limit: PAGE, before_id: null });
  const t = S.thread(store, address);
  for (const m of page.messages) S.upsertMessage(store, m);
  if (!t.loaded) t.hasMore = page.has_more;
  t.loaded = true;
  if (address === store.current) roomChanged({ toBottom: true });
}

async function loadOlder() {
  const address = store.current;
  if (!address) return;
  const t = S.thread(store, address);
  if (!t.loaded || !t.hasMore || t.loadingOlder) return;
  const before = S.oldestId(t);
  if (before === null) return;
  t.loadingOlder = true;
  $('history-state').textContent = 'Loading earlier messages…';
  try {
    const page = await api.messages({ room: address, limit: PAGE, before_id: before });
    for (const m of page.messages) S.upsertMessage(store, m);
    t.hasMore = page.has_more;
    if (address === store.current) roomChanged({ keepFromBottom: true });
  } catch (e) {
    showError(e);
  } finally {
    t.loadingOlder = false;
    renderHistoryState();
    // The top may still be in view (short pages): keep going.
    requestAnimationFrame(() => { if (topVisible) loadOlder(); });
  }
}

async function loadMembers(address) {
  try {
    store.members.set(address, S.withOurPresence(await api.members({ room: address }), our.node, document.hidden));
    if (address === store.current) { renderMembers(); renderHeader(); scheduleMessages(); }
  } catch (e) {
    if (address === store.current && e.code !== 'host-offline') showError(e);
  }
}

// ---------- Sidebar ----------

function renderMe() {
  const me = store.me;
  if (!me) return;
  $('me-avatar').replaceWith(Object.assign(avatar(me.display_name || me.node, me.color, 'small', 'online'), { id: 'me-avatar' }));
  $('me-name').textContent = me.display_name || me.node;
  $('me-node').textContent = me.node;
}

/** A person's presence is theirs, not a room's: the liveliest any room last heard. */
function presenceOfPeer(r) {
  if (!r.peer) return null;
  const rank = { online: 2, away: 1, offline: 0 };
  let best = null;
  for (const members of store.members.values()) {
    const m = members.find((x) => x.node === r.peer);
    if (m && (best === null || rank[m.presence] > rank[best])) best = m.presence;
  }
  return best || (r.host_online ? 'online' : 'offline');
}

function roomLink(r) {
  const current = r.address === store.current;
  const badge = r.mentions > 0
    ? el('span.badge.mention', { title: `${r.mentions} mention${r.mentions > 1 ? 's' : ''}` }, `@${r.mentions}`)
    : r.unread > 0 ? el('span.badge', { title: `${r.unread} unread` }, r.unread > 99 ? '99+' : r.unread)
      : r.pending > 0 ? el('span.badge.pending', { title: `${r.pending} waiting to be sent` }, '🕓') : null;
  const last = r.last_message;
  const preview = last && last.kind === 'system' ? last.text
    : last ? `${last.from === our.node ? 'You' : nameOf(r.address, last.from)}: ${last.deleted ? 'deleted a message' : (last.text || (last.attachment ? '📎 ' + last.attachment.name : ''))}`
    : r.kind === 'direct' ? 'Direct message' : `${r.member_count} member${r.member_count === 1 ? '' : 's'}`;
  const glyph = r.kind === 'direct'
    ? el('span.dm-avatar', {}, avatar(titleOf(r), colourOfMember(r.address, r.peer), 'tiny'), el(`span.dot.${presenceOfPeer(r) || 'offline'}`))
    : el('span.glyph', { 'aria-hidden': 'true' }, r.kind === 'private' ? '🔒' : '#');
  const unreadLabel = r.unread ? `, ${r.unread} unread` : '';
  return el('li', {}, el(`a${r.unread ? '.unread' : ''}`, {
    href: '#room=' + encodeURIComponent(r.address),
    'aria-current': current ? 'page' : null,
    'aria-label': `${r.kind === 'direct' ? 'Direct message with ' : ''}${titleOf(r)}${unreadLabel}${r.mentions ? `, ${r.mentions} mentions` : ''}`,
    dataset: { room: r.address },
    onclick: (e) => { e.preventDefault(); openRoom(r.address); },
  }, glyph, el('span.rname', {}, titleOf(r), el('span.preview', {}, preview)), badge));
}

/** What a room is called here: a direct room by the other member. */
function titleOf(r) {
  return r.kind === 'direct' && r.peer ? nameOf(r.address, r.peer) : r.name;
}

function nameOf(address, node) {
  const m = S.memberOf(store, address, node);
  return (m && m.display_name) || node;
}

function colourOfMember(address, node) {
  const m = S.memberOf(store, address, node);
  return (m && safeColour(m.color)) || colourOf(node || '?');
}

function inviteCard(r) {
  return el('li.invite-card', { dataset: { room: r.address } },
    el('p', {}, el('strong', {}, r.invited_by || r.host), ' invited you to ', el('strong', {}, r.name)),
    el('div.row', {},
      el('button.button.primary', { type: 'button', dataset: { action: 'accept' }, onclick: () => act(async () => {
        const room = await api.join({ address: r.address });
        store.rooms.set(room.address, room);
        renderSidebar();
        openRoom(room.address);
      }) }, 'Join'),
      el('button.button', { type: 'button', dataset: { action: 'decline' }, onclick: () => act(async () => {
        await api.decline({ room: r.address });
        store.rooms.delete(r.address);
        renderSidebar();
      }) }, 'Decline')));
}

function renderSidebar() {
  const { invites, rooms, dms } = S.sidebar(store, filter);
  $('invites-section').hidden = invites.length === 0;
  $('invites').replaceChildren(...invites.map(inviteCard));
  $('rooms').replaceChildren(...(rooms.length ? rooms.map(roomLink) : [el('li.none', { style: 'padding:4px 8px;color:var(--side-muted);font-size:13px' }, filter ? 'No match' : 'No rooms yet')]));
  $('dms').replaceChildren(...dms.map(roomLink));
  const unread = [...store.rooms.values()].reduce((n, r) => n + (r.role ? r.unread : 0), 0);
  document.title = `${unread ? `(${unread}) ` : ''}Chat · ${our.node}`;
}

/** Rooms in the order the sidebar shows them, for Alt+↑/↓. */
function roomOrder() {
  const { rooms, dms } = S.sidebar(store, filter);
  return rooms.concat(dms).map((r) => r.address);
}

// ---------- The open room ----------

function openRoom(address) {
  if (address && !store.rooms.has(address)) address = null;
  const changed = store.current !== address;
  store.current = address;
  app.dataset.view = address ? 'room' : 'list';
  const hash = address ? '#room=' + encodeURIComponent(address) : '';
  if (location.hash !== hash) history.replaceState(null, '', hash || location.pathname);
  $('empty').hidden = !!address;
  document.querySelector('.composer-wrap').hidden = !address;
  $('members-button').hidden = !address;
  if (changed) {
    composer.reset();
    hideError();
  }
  renderSidebar();
  renderHeader();
  renderMembers();
  renderTyping();
  if (!address) { $('messages').replaceChildren(); $('history-state').textContent = ''; $('members').hidden = true; return; }
  const t = S.thread(store, address);
  roomChanged({ toBottom: true });
  if (!t.loaded) loadLatest(address).catch(showError);
  loadMembers(address);
  if (changed && matchMedia('(min-width: 761px)').matches) composer.focus();
}

function renderHeader() {
  const r = store.current && store.rooms.get(store.current);
  if (!r) {
    $('room-name').textContent = 'Welcome';
    $('room-sub').textContent = store.me ? `Signed in as ${store.me.node}` : '';
    $('invite-button').hidden = true;
    $('host-banner').hidden = true;
    return;
  }
  const members = store.members.get(r.address) || [];
  const online = members.filter((m) => m.presence === 'online').length;
  $('room-name').textContent = (r.kind === 'direct' ? '' : r.kind === 'private' ? '🔒 ' : '# ') + titleOf(r);
  if (r.kind === 'direct') {
    $('room-sub').textContent = `${r.peer} · ${presenceOfPeer(r)}`;
  } else {
    $('room-sub').textContent = `${r.address} · ${r.member_count} member${r.member_count === 1 ? '' : 's'}${members.length ? `, ${online} online` : ''}`;
  }
  $('member-count').textContent = r.member_count;
  const admin = r.role === 'owner' || r.role === 'admin';
  $('invite-button').hidden = !admin || r.kind === 'direct';
  $('invite-form').hidden = !admin || r.kind === 'direct';
  $('rename-button').hidden = !admin || r.kind === 'direct';
  const banner = $('host-banner');
  banner.hidden = r.host_online !== false;
  banner.textContent = r.pending
    ? `${r.host}, this room's host, is offline. ${r.pending} message${r.pending === 1 ? '' : 's'} will be sent when it is back.`
    : `${r.host}, this room's host, is offline. You are reading your saved copy; messages you send will wait.`;
}

let renderQueued = false;
let pendingScroll = null;
/** Re-render the open room's messages once per frame. */
function roomChanged(opts = {}) {
  const scroller = $('scroller');
  const fromBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
  const atBottom = fromBottom < 80;
  if (opts.toBottom || (opts.newMessage && (atBottom || opts.newMessage.from === our.node))) pendingScroll = { bottom: true };
  else if (opts.keepFromBottom && !pendingScroll) pendingScroll = { fromBottom };
  else if (opts.newMessage && !atBottom && opts.newMessage.from !== our.node) $('jump').hidden = false;
  scheduleMessages();
}

function scheduleMessages() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const scroller = $('scroller');
    const before = scroller.scrollHeight - scroller.scrollTop;
    const r = store.rooms.get(store.current);
    renderMessages($('messages'), {
      store, our: our.node,
      canModerate: r && (r.role === 'owner' || r.role === 'admin'),
      onReply: (m) => composer.replyTo(m),
      onEdit: (m) => composer.edit(m),
      onDelete: (m) => act(async () => {
        if (!confirm('Delete this message for everyone?')) return;
        S.upsertMessage(store, await api.delete_message({ room: m.room, id: m.id }));
        scheduleMessages();
      }),
      onReact: (m, emoji) => act(async () => {
        S.upsertMessage(store, await api.react({ room: m.room, id: m.id, emoji }));
        scheduleMessages();
      }),
      onRetry: (m) => act(async () => { S.upsertMessage(store, await api.retry({ room: m.room, client_id: m.client_id })); scheduleMessages(); }),
      onDiscard: (m) => act(async () => {
        await api.discard({ room: m.room, client_id: m.client_id });
        S.dropPending(store, m.room, m.client_id);
        scheduleMessages();
      }),
      onQuote: (id) => focusMessage(id),
      attachment: (att) => attachmentView(att, loadAttachment),
    });
    if (pendingScroll && pendingScroll.bottom) scroller.scrollTop = scroller.scrollHeight;
    else if (pendingScroll) scroller.scrollTop = scroller.scrollHeight - scroller.clientHeight - pendingScroll.fromBottom;
    else scroller.scrollTop = scroller.scrollHeight - before;
    pendingScroll = null;
    renderHistoryState();
    markRead();
  });
}

function renderHistoryState() {
  const t = store.current && store.threads.get(store.current);
  const state = $('history-state');
  if (!t || !t.loaded) state.textContent = store.current ? 'Loading…' : '';
  else if (t.loadingOlder) state.textContent = 'Loading earlier messages…';
  else if (!t.hasMore) {
    const r = store.rooms.get(store.current);
    state.textContent = t.byKey.size ? `This is the beginning of ${r ? titleOf(r) : 'the room'}.` : 'No messages yet. Say hello!';
  } else state.textContent = '';
  state.dataset.hasMore = t && t.hasMore ? 'true' : 'false';
}

function focusMessage(id) {
  const node = document.querySelector(`.msg[data-id="${id}"]`);
  if (!node) return toast('That message is further up: scroll to load it.');
  node.scrollIntoView({ block: 'center', behavior: 'smooth' });
  node.classList.add('selected');
  node.focus({ preventScroll: true });
  setTimeout(() => node.classList.remove('selected'), 1600);
}

let readTimer = null;
/** Tell our node what we have seen, once the newest message is on screen. */
function markRead() {
  const r = store.current && store.rooms.get(store.current);
  const t = r && store.threads.get(r.address);
  if (!r || !t || document.hidden || !r.role) return;
  const newest = S.newestId(t);
  const scroller = $('scroller');
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  if (atBottom) $('jump').hidden = true;
  if (!newest || newest <= r.last_read || !atBottom) return;
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    api.mark_read({ room: r.address, id: newest }).then((room) => {
      store.rooms.set(room.address, room);
      renderSidebar();
    }, () => {});
  }, 300);
}

let typingTimer = null;
function renderTyping() {
  const nodes = store.current ? S.typingNow(store, store.current) : [];
  const names = nodes.map((n) => (S.memberOf(store, store.current, n) || {}).display_name || n);
  $('typing').textContent = names.length === 0 ? ''
    : names.length === 1 ? `${names[0]} is typing…`
      : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : 'Several people are typing…';
  clearTimeout(typingTimer);
  if (nodes.length) typingTimer = setTimeout(renderTyping, 1000);
}

// ---------- Members ----------

function renderMembers() {
  const r = store.current && store.rooms.get(store.current);
  const list = $('member-list');
  if (!r) { list.replaceChildren(); return; }
  const admin = r.role === 'owner' || r.role === 'admin';
  const rank = { owner: 0, admin: 1, member: 2 };
  const order = { online: 0, away: 1, offline: 2 };
  const members = [...(store.members.get(r.address) || [])]
    .sort((a, b) => order[a.presence] - order[b.presence] || rank[a.role] - rank[b.role] || a.node.localeCompare(b.node));
  list.replaceChildren(...members.map((m) => el('li', { dataset: { node: m.node, presence: m.presence } },
    avatar(m.display_name || m.node, m.color, 'small', m.presence),
    el('span.who', {}, el('span.name', {}, m.display_name || m.node, m.node === our.node ? ' (you)' : ''),
      el('span.node', {}, `${m.node} · ${m.presence}`)),
    m.role !== 'member' ? el('span.role', {}, m.role) : null,
    admin && m.role !== 'owner' && m.node !== our.node && r.kind !== 'direct'
      ? el('button.icon-button.remove', { type: 'button', 'aria-label': `Remove ${m.node}`, title: `Remove ${m.node}`,
        onclick: () => act(async () => { if (confirm(`Remove ${m.node} from ${r.name}?`)) await api.remove_member({ room: r.address, node: m.node }); }) }, '×')
      : null)));
}

function toggleMembers(show) {
  const panel = $('members');
  panel.hidden = show === undefined ? !panel.hidden : !show;
  $('members-button').setAttribute('aria-expanded', String(!panel.hidden));
  if (!panel.hidden) { renderMembers(); $('members-close').focus(); }
}

// ---------- Attachments ----------

const attachments = new Map(); // "node/id" -> data URL or Promise
async function loadAttachment(att) {
  const key = `${att.node}/${att.id}`;
  const known = attachments.get(key);
  if (known) return known;
  const p = api.attachment({ node: att.node, id: att.id }).then((d) => {
    const url = `data:${d.attachment.mime || att.mime};base64,${d.data}`;
    attachments.set(key, url);
    return url;
  }, (e) => { attachments.delete(key); throw e; });
  attachments.set(key, p);
  return p;
}
loadAttachment.cached = (att) => {
  const v = attachments.get(`${att.node}/${att.id}`);
  return typeof v === 'string' ? v : null;
};

// ---------- Errors, toasts, dialogs ----------

let errorTimer = null;
export function showError(e) {
  const box = $('error');
  box.textContent = explain(e);
  box.dataset.code = (e && e.code) || 'error';
  box.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(hideError, ERROR_MS);
}
function hideError() { $('error').hidden = true; }

let toastTimer = null;
function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
}

async function act(fn) {
  try { await fn(); } catch (e) { showError(e); }
}

/** Ask in the dialog; `fields` builds the body, `submit(form)` may throw a ChatError shown in place. */
function ask(title, ok, fields, submit) {
  const dialog = $('dialog');
  $('dialog-title').textContent = title;
  $('dialog-ok').textContent = ok;
  $('dialog-body').replaceChildren(...fields);
  $('dialog-error').hidden = true;
  const form = $('dialog-form');
  form.onsubmit = async (e) => {
    e.preventDefault();
    $('dialog-ok').disabled = true;
    try {
      await submit(form);
      dialog.close();
    } catch (err) {
      $('dialog-error').textContent = explain(err);
      $('dialog-error').hidden = false;
    } finally {
      $('dialog-ok').disabled = false;
    }
  };
  $('dialog-cancel').onclick = () => dialog.close();
  dialog.showModal();
  const first = dialog.querySelector('#dialog-body input');
  if (first) first.focus();
}

const field = (id, label, props = {}) => [el('label', { for: id }, label), el('input', { id, name: id, autocomplete: 'off', ...props })];

function newRoomDialog() {
  ask('New room', 'Create room', [
    ...field('d-name', 'Name', { required: true, maxlength: 64, placeholder: 'Project Hearth' }),
    el('div.choices', { role: 'radiogroup', 'aria-label': 'Who may join' },
      el('label', {}, el('input', { type: 'radio', name: 'kind', value: 'public', checked: true }), 'Public: anyone with the address'),
      el('label', {}, el('input', { type: 'radio', name: 'kind', value: 'private' }), 'Private: invited only')),
    el('p.note', {}, 'Your node hosts the room. Invite others by their node name.'),
  ], async (form) => {
    const room = await api.create_room({ name: form['d-name'].value.trim(), kind: form.kind.value });
    store.rooms.set(room.address, room);
    renderSidebar();
    openRoom(room.address);
  });
}

function newDmDialog() {
  ask('New direct message', 'Open', [
    ...field('d-node', 'Node name', { required: true, placeholder: 'bob.os' }),
  ], async (form) => {
    const room = await api.open_direct({ node: form['d-node'].value.trim() });
    store.rooms.set(room.address, room);
    renderSidebar();
    openRoom(room.address);
  });
}

function joinDialog() {
  ask('Join a room', 'Join', [
    ...field('d-address', 'Room address', { required: true, placeholder: 'room-id@alice.os' }),
    el('p.note', {}, 'A public room by its address, or a private one you were invited to.'),
  ], async (form) => {
    const room = await api.join({ address: form['d-address'].value.trim() });
    store.rooms.set(room.address, room);
    renderSidebar();
    openRoom(room.address);
  });
}

function inviteDialog() {
  const r = store.rooms.get(store.current);
  if (!r) return;
  ask(`Invite to ${r.name}`, 'Invite', [...field('d-invite', 'Node name', { required: true, placeholder: 'bob.os' })],
    async (form) => {
      const node = form['d-invite'].value.trim();
      await api.invite({ room: r.address, node });
      toast(`Invited ${node}`);
    });
}

function renameDialog() {
  const r = store.rooms.get(store.current);
  if (!r) return;
  ask('Rename room', 'Rename', [...field('d-rename', 'Name', { required: true, maxlength: 64, value: r.name })],
    (form) => api.rename({ room: r.address, name: form['d-rename'].value.trim() }));
}

function profileDialog() {
  const me = store.me || { display_name: our.node, color: colourOf(our.node) };
  const swatches = el('div.swatches', { role: 'radiogroup', 'aria-label': 'Avatar colour' }, SWATCHES.map((c) =>
    el('input', { type: 'radio', name: 'color', value: c, 'aria-label': c, style: `background:${c}`, checked: c === me.color })));
  ask('Your profile', 'Save', [
    ...field('d-display', 'Display name', { required: true, maxlength: 40, value: me.display_name }),
    el('label', {}, 'Avatar colour'), swatches,
    el('p.note', {}, `Members of your rooms see this next to ${our.node}.`),
  ], async (form) => {
    const color = (form.querySelector('input[name=color]:checked') || {}).value || me.color || SWATCHES[0];
    store.me = await api.set_profile({ display_name: form['d-display'].value.trim(), color });
    renderMe();
  });
}

// ---------- The composer ----------

const composer = new Composer({
  store,
  our: our.node,
  maxUpload: MAX_UPLOAD,
  send: async ({ text, replyTo, attachment }) => {
    const m = await api.send({ room: store.current, text, reply_to: replyTo, attachment });
    S.upsertMessage(store, m);
    roomChanged({ newMessage: m });
    return m;
  },
  edit: async (m, text) => {
    S.upsertMessage(store, await api.edit({ room: m.room, id: m.id, text }));
    scheduleMessages();
  },
  upload: (file) => readBase64(file).then((data) => api.upload({ name: file.name, mime: file.type || 'application/octet-stream', data })),
  typing: () => { if (store.current) api.typing({ room: store.current }).catch(() => {}); },
  error: showError,
  clearError: hideError,
  lastOwn: () => {
    const t = store.current && store.threads.get(store.current);
    return t ? S.ordered(t).filter((m) => m.from === our.node && m.id > 0 && !m.deleted && m.kind !== 'system').pop() : null;
  },
});

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// ---------- Wiring ----------

let topVisible = false;
new IntersectionObserver((entries) => {
  topVisible = entries.some((e) => e.isIntersecting);
  if (topVisible) loadOlder();
}, { root: $('scroller'), rootMargin: '400px 0px 0px 0px' }).observe($('top-sentinel'));

// The newest message stays in view while it was: content that grows after
// it is drawn (an image decoding, a narrower window, the composer growing)
// would otherwise push it below the fold.
let pinned = true;
let pinnedTop = 0; // scrollTop when `pinned` was last decided
$('scroller').addEventListener('scroll', () => {
  const s = $('scroller');
  pinned = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  pinnedTop = s.scrollTop;
  markRead();
}, { passive: true });
const keepPinned = new ResizeObserver(() => {
  const s = $('scroller');
  // Not if the reader scrolled up since (its scroll event not yet heard).
  if (pinned && store.current && s.scrollTop >= pinnedTop - 1) s.scrollTop = s.scrollHeight;
});
keepPinned.observe($('messages'));
keepPinned.observe($('scroller'));
document.addEventListener('click', (e) => {
  if (!e.target.closest('.tools')) closePicker($('messages'));
});
$('jump').addEventListener('click', () => { pendingScroll = { bottom: true }; scheduleMessages(); $('jump').hidden = true; });
$('new-room').addEventListener('click', newRoomDialog);
$('empty-new-room').addEventListener('click', newRoomDialog);
$('new-dm').addEventListener('click', newDmDialog);
$('join-room').addEventListener('click', joinDialog);
$('profile-button').addEventListener('click', profileDialog);
$('invite-button').addEventListener('click', inviteDialog);
$('rename-button').addEventListener('click', renameDialog);
$('members-button').addEventListener('click', () => toggleMembers());
$('members-close').addEventListener('click', () => toggleMembers(false));
$('back').addEventListener('click', () => { app.dataset.view = 'list'; });
$('room-filter').addEventListener('input', (e) => { filter = e.target.value; renderSidebar(); });
$('copy-address').addEventListener('click', () => {
  const a = store.current;
  if (!a) return;
  (navigator.clipboard ? navigator.clipboard.writeText(a) : Promise.reject()).then(() => toast('Room address copied'), () => toast(a));
});
$('leave-button').addEventListener('click', () => act(async () => {
  const r = store.rooms.get(store.current);
  if (!r || !confirm(`Leave ${r.name}? Its history goes from your node.`)) return;
  await api.leave({ room: r.address });
  store.rooms.delete(r.address);
  store.threads.delete(r.address);
  toggleMembers(false);
  openRoom(null);
}));
$('invite-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('invite-node');
  const node = input.value.trim();
  act(async () => {
    await api.invite({ room: store.current, node });
    toast(`Invited ${node}`);
    // Empty the box only if it still holds whom we invited: the next name
    // may have been typed while this invitation was on its way.
    if (input.value.trim() === node) input.value = '';
  });
});
document.addEventListener('visibilitychange', () => { if (!document.hidden) markRead(); });
window.addEventListener('hashchange', () => openRoom(roomFromHash()));

document.addEventListener('keydown', (e) => {
  if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
    const order = roomOrder();
    if (!order.length) return;
    e.preventDefault();
    const i = order.indexOf(store.current);
    const next = e.key === 'ArrowUp' ? (i <= 0 ? order.length - 1 : i - 1) : (i + 1) % order.length;
    openRoom(order[next]);
  } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') {
    e.preventDefault();
    app.dataset.view = 'list';
    $('room-filter').focus();
  } else if (e.key === 'Escape' && document.querySelector('.msg.picking')) {
    closePicker($('messages'));
  } else if (e.key === 'Escape' && !$('members').hidden && !$('dialog').open) {
    toggleMembers(false);
  }
});

function roomFromHash() {
  const m = location.hash.match(/^#room=(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

// Start: watch first, then load (events are upserts, overlap is harmless).
watchView();
presence();
reloadAll().then(() => {
  const wanted = roomFromHash();
  if (wanted && store.rooms.has(wanted)) openRoom(wanted);
  else openRoom(null);
  app.dataset.ready = 'true';
});
window.chat = { store, openRoom, api };
