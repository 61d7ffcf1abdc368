// The room's message list: day dividers, messages grouped by sender,
// inline replies, reactions, attachments, and our pending/failed marks.

import { el, avatar, timeOf, fullTime, dayKey, dayLabel, bytes, richText, safeColour } from './util.js';
import { ordered, findMessage, memberOf, refusedAt } from './store.js';
import { explain, retryAt, slowDown } from './api.js';

/** How often a rate limit's "try again in N s" counts down. */
const COUNTDOWN_MS = 1000;

/** Messages closer than this from one sender share a header. */
const GROUP_GAP_MS = 5 * 60 * 1000;
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '👀'];

/**
 * The message whose reaction picker is open, as `room/id`. The list is
 * drawn anew on every change, so the open picker is kept here, not in the
 * DOM: a message arriving while the picker is open must not close it.
 */
let picking = null;

/** Close the open reaction picker in `list` (the messages), if any. */
export function closePicker(list) {
  picking = null;
  for (const li of list.querySelectorAll('.msg.picking')) showPicker(li, false);
}

function showPicker(li, open) {
  li.classList.toggle('picking', open);
  const picker = li.querySelector('.picker');
  if (picker) picker.hidden = !open;
  const button = li.querySelector('.tools .react');
  if (button) button.setAttribute('aria-expanded', String(open));
}

/**
 * Render the open room's messages into `list`.
 * `ctx` = {store, our, onReply, onEdit, onDelete, onReact, onRetry, onDiscard, onQuote, attachment}
 */
export function renderMessages(list, ctx) {
  const { store, our } = ctx;
  const address = store.current;
  const t = store.threads.get(address);
  const items = [];
  if (t) {
    const memberNodes = new Set((store.members.get(address) || []).map((m) => m.node));
    let lastDay = null;
    let group = null;
    let prev = null;
    for (const m of ordered(t)) {
      const day = dayKey(m.sent_at);
      if (day !== lastDay) {
        items.push(el('li.day', { role: 'separator' }, dayLabel(m.sent_at)));
        lastDay = day;
        group = null;
      }
      if (m.kind === 'system') {
        items.push(el('li.msg.system', { dataset: { id: m.id } }, m.text));
        group = null;
        prev = m;
        continue;
      }
      const joins = group && prev && prev.from === m.from && prev.kind !== 'system' && m.sent_at - prev.sent_at < GROUP_GAP_MS;
      if (!joins) {
        const member = memberOf(store, address, m.from);
        const name = (member && member.display_name) || m.from;
        group = el('li.group', { dataset: { from: m.from } },
          avatar(name, member && member.color, '', member && member.presence),
          el('div.group-head', {},
            el('span.sender', { style: member && safeColour(member.color) ? `color:${member.color}` : null }, name),
            name !== m.from ? el('span.node', {}, m.from) : null,
            el('time', { datetime: new Date(m.sent_at).toISOString(), title: fullTime(m.sent_at) }, timeOf(m.sent_at))));
        items.push(group);
      }
      group.append(message(m, ctx, memberNodes, !joins));
      prev = m;
    }
  }
  list.replaceChildren(...items);
  countDown(list);
}

let countdown = 0;

/**
 * Keep each "try again in N s" under a rate-limited message of ours true
 * as it sits: one timer while any counts, updating the words in place
 * (the list is not drawn anew), until each says it can be tried now.
 */
function countDown(list) {
  const tick = () => {
    let counting = false;
    const now = Date.now();
    for (const status of list.querySelectorAll('.status.failed[data-retry-at]')) {
      const at = Number(status.dataset.retryAt);
      const words = slowDown(at, now);
      status.querySelector('.why').textContent = `⚠ Not sent: ${words}`;
      status.title = words;
      if (at > now) counting = true;
      else delete status.dataset.retryAt;
    }
    if (!counting && countdown) { clearInterval(countdown); countdown = 0; }
    return counting;
  };
  if (tick() && !countdown) countdown = setInterval(tick, COUNTDOWN_MS);
}

function message(m, ctx, memberNodes, first) {
  const { store, our } = ctx;
  const mine = m.from === our;
  const classes = ['msg'];
  if (m.deleted) classes.push('deleted');
  if (m.delivery === 'pending') classes.push('pending');
  if (m.delivery === 'failed') classes.push('failed');
  if (!mine && (m.mentions || []).includes(our)) classes.push('mentions-me');
  if (m.id > 0 && !m.deleted && picking === `${m.room}/${m.id}`) classes.push('picking');
  const li = el(`div.${classes.join('.')}`, {
    dataset: { id: m.id, clientId: m.client_id || '', from: m.from, delivery: m.delivery || 'sent' },
    tabindex: '-1',
  });
  if (!first) li.append(el('time.hover-time', { title: fullTime(m.sent_at) }, timeOf(m.sent_at)));
  if (m.reply_to) {
    const q = findMessage(store, store.current, m.reply_to);
    const who = q ? ((memberOf(store, store.current, q.from) || {}).display_name || q.from) : 'a message';
    const what = q ? (q.deleted ? 'deleted message' : (q.text || (q.attachment ? q.attachment.name : ''))) : 'not loaded';
    li.append(el('div.quote', { role: 'link', tabindex: '0', title: 'Show the message replied to', dataset: { replyTo: m.reply_to },
      onclick: () => ctx.onQuote(m.reply_to), onkeydown: (e) => { if (e.key === 'Enter') ctx.onQuote(m.reply_to); } },
    '↪ ', el('b', {}, who), ' ', what.slice(0, 140)));
  }
  const text = el('div.text');
  if (m.deleted) text.append('This message was deleted.');
  else text.append(...richText(m.text, memberNodes));
  if (m.edited_at && !m.deleted) text.append(el('span.edited', { title: fullTime(m.edited_at) }, '(edited)'));
  if (mine && m.delivery === 'pending') text.append(el('span.status.pending', { title: 'Waiting for the room\'s host' }, '🕓 Pending'));
  if (mine && m.delivery === 'failed') {
    const since = refusedAt(store, m);
    const why = m.error ? explain(m.error, since) : '';
    const at = m.error && retryAt(m.error, since);
    text.append(el('span.status.failed', { title: why, dataset: at ? { retryAt: at } : {} },
      el('span.why', {}, `⚠ Not sent${why ? ': ' + why : ''}`),
      el('button.link-button', { type: 'button', onclick: () => ctx.onRetry(m) }, 'Retry'),
      el('button.link-button', { type: 'button', onclick: () => ctx.onDiscard(m) }, 'Discard')));
  }
  if (m.text || m.deleted || !m.attachment) li.append(text);
  if (m.attachment && !m.deleted) {
    li.append(ctx.attachment(m.attachment));
    if (!m.text && (m.edited_at || m.delivery !== 'sent')) li.append(text);
  }
  const reactions = Object.entries(m.reactions || {}).filter(([, who]) => who.length);
  if (reactions.length && !m.deleted) {
    li.append(el('div.reactions', {}, reactions.map(([emoji, who]) => el(`button.reaction${who.includes(our) ? '.mine' : ''}`, {
      type: 'button', title: who.join(', '), 'aria-pressed': who.includes(our) ? 'true' : 'false',
      'aria-label': `${emoji} ${who.length}, by ${who.join(', ')}`, dataset: { emoji },
      onclick: () => ctx.onReact(m, emoji) }, `${emoji} ${who.length}`))));
  }
  if (m.id > 0 && !m.deleted) {
    const key = `${m.room}/${m.id}`;
    const open = picking === key;
    const list = () => li.closest('.messages') || li;
    const picker = el('span.picker', { hidden: !open }, QUICK_REACTIONS.map((e) =>
      el('button', { type: 'button', 'aria-label': `React ${e}`, title: `React ${e}`, dataset: { emoji: e }, onclick: () => {
        closePicker(list());
        showPicker(li, false);
        ctx.onReact(m, e);
      } }, e)));
    const toggle = () => {
      const wasOpen = picking === key;
      closePicker(list());
      showPicker(li, !wasOpen);
      if (!wasOpen) picking = key;
    };
    li.append(el('div.tools', { role: 'toolbar', 'aria-label': 'Message actions' },
      picker,
      el('button.react', { type: 'button', 'aria-label': 'Add a reaction', title: 'React', 'aria-expanded': open ? 'true' : 'false', onclick: toggle }, '☺'),
      el('button.reply', { type: 'button', 'aria-label': 'Reply', title: 'Reply', onclick: () => ctx.onReply(m) }, '↩'),
      mine ? el('button.edit', { type: 'button', 'aria-label': 'Edit', title: 'Edit', onclick: () => ctx.onEdit(m) }, '✎') : null,
      mine || ctx.canModerate ? el('button.delete', { type: 'button', 'aria-label': 'Delete', title: 'Delete', onclick: () => ctx.onDelete(m) }, '🗑') : null));
  }
  return li;
}

/** The preview of an attachment; images load through our node (cached there). */
export function attachmentView(att, load) {
  const box = el('div.attachment', { dataset: { attachment: att.id } });
  const isImage = /^image\/(png|jpe?g|gif|webp|avif|bmp)$/i.test(att.mime);
  const render = (url) => {
      if (isImage) {
        box.replaceChildren(el('img', { src: url, alt: att.name, loading: 'lazy', title: `${att.name} · ${bytes(att.size)}`,
          onclick: () => lightbox(url, att.name) }));
      } else {
        const ext = (att.name.split('.').pop() || 'file').slice(0, 5).toUpperCase();
        box.replaceChildren(el('a.file', { href: url, download: att.name },
          el('span.ext', {}, ext), el('span', {}, att.name, el('br'), el('small', {}, bytes(att.size)))));
      }
  };
  const show = () => {
    const ready = load.cached(att);
    if (ready) return render(ready);
    box.replaceChildren(el('span.loading', {}, isImage ? `Loading image ${att.name}…` : `${att.name} · ${bytes(att.size)}`));
    load(att).then(render, (e) => {
      const why = e && e.code === 'sender-offline' ? `unavailable while ${att.node} is offline` : (e && e.message) || 'unavailable';
      box.replaceChildren(el('span.unavailable', {}, `${att.name}: ${why} `,
        el('button.link-button', { type: 'button', onclick: show }, 'Retry')));
    });
  };
  show();
  return box;
}

function lightbox(url, name) {
  const box = el('div.lightbox', { role: 'dialog', 'aria-label': name, tabindex: '-1' }, el('img', { src: url, alt: name }));
  const close = () => box.remove();
  box.addEventListener('click', close);
  box.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
  document.body.append(box);
  box.focus();
}
