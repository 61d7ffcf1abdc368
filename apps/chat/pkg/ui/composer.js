// The message box: Enter sends, Shift+Enter breaks the line, @ completes
// members, ↑ in an empty box edits our last message, Esc cancels a reply
// or an edit; the paperclip uploads a file to our node first.

import { el, $, avatar, bytes } from './util.js';

/** The node refuses longer texts (`too-long`); the counter shows near it. */
export const MAX_TEXT = 4000;
/** Tell the room we are typing at most this often. */
const TYPING_EVERY_MS = 2000;

export class Composer {
  constructor(opts) {
    this.o = opts;
    this.text = $('composer-text');
    this.form = $('composer');
    this.list = $('mention-list');
    this.reply = null;      // message replied to
    this.editing = null;    // message being edited
    this.attachment = null; // uploaded Attachment
    this.uploading = false;
    this.upload = null;     // the upload in flight
    this.lastTyping = 0;
    this.mention = null;    // {start, query, items, index}
    this.sending = Promise.resolve();
    this.waiting = 0;       // sends not answered yet
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    this.text.addEventListener('keydown', (e) => this.keydown(e));
    this.text.addEventListener('input', () => this.input());
    this.text.addEventListener('blur', () => setTimeout(() => this.closeMentions(), 150));
    $('reply-cancel').addEventListener('click', () => this.cancel());
    $('attach').addEventListener('click', () => $('file').click());
    $('file').addEventListener('change', (e) => this.pick(e.target.files[0]));
  }

  focus() { this.text.focus(); }

  reset() {
    this.text.value = '';
    this.reply = null;
    this.editing = null;
    this.attachment = null;
    this.renderBar();
    this.renderChip();
    this.input(true);
  }

  replyTo(m) {
    this.editing = null;
    this.reply = m;
    this.renderBar();
    this.focus();
  }

  edit(m) {
    this.reply = null;
    this.editing = m;
    this.text.value = m.text;
    this.renderBar();
    this.input(true);
    this.focus();
  }

  cancel() {
    if (this.editing) this.text.value = '';
    this.reply = null;
    this.editing = null;
    this.renderBar();
    this.input(true);
  }

  renderBar() {
    const bar = $('reply-bar');
    const m = this.reply || this.editing;
    bar.hidden = !m;
    if (!m) return;
    const who = m.from;
    $('reply-text').textContent = this.editing
      ? 'Editing your message · Esc to cancel'
      : `Replying to ${who}: ${(m.text || (m.attachment ? m.attachment.name : '')).slice(0, 120)}`;
    bar.dataset.mode = this.editing ? 'edit' : 'reply';
  }

  renderChip() {
    const chip = $('attachment-chip');
    if (!this.attachment && !this.uploading) { chip.hidden = true; chip.replaceChildren(); return; }
    chip.hidden = false;
    chip.replaceChildren(
      el('span', {}, this.uploading ? `Uploading ${this.uploading}…` : `📎 ${this.attachment.name} · ${bytes(this.attachment.size)}`),
      this.uploading ? null : el('button', { type: 'button', 'aria-label': 'Remove the file', onclick: () => { this.attachment = null; this.renderChip(); this.input(true); } }, '×'));
  }

  async pick(file) {
    $('file').value = '';
    if (!file) return;
    if (file.size > this.o.maxUpload) {
      this.o.error({ code: 'too-large', message: `${file.name} is ${bytes(file.size)}; files may be at most ${bytes(this.o.maxUpload)}` });
      return;
    }
    this.uploading = file.name;
    this.renderChip();
    this.upload = (async () => {
      try {
        this.attachment = await this.o.upload(file);
      } catch (e) {
        this.o.error(e);
      } finally {
        this.uploading = false;
        this.upload = null;
        this.renderChip();
        this.input(true);
        this.focus();
      }
    })();
    return this.upload;
  }

  /** Update the counter, the height, mentions; tell the room we type. */
  input(quiet) {
    const t = this.text;
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight, 180) + 'px';
    const n = [...t.value].length;
    const counter = $('counter');
    counter.textContent = n > MAX_TEXT - 500 ? `${n}/${MAX_TEXT}` : '';
    counter.classList.toggle('over', n > MAX_TEXT);
    if (quiet) return;
    this.o.clearError();
    const now = Date.now();
    if (t.value.trim() && now - this.lastTyping > TYPING_EVERY_MS && !this.editing) {
      this.lastTyping = now;
      this.o.typing();
    }
    this.findMention();
  }

  findMention() {
    const t = this.text;
    const upTo = t.value.slice(0, t.selectionStart);
    const m = upTo.match(/(^|\s)@([a-z0-9.-]*)$/i);
    if (!m) return this.closeMentions();
    const query = m[2].toLowerCase();
    const members = (this.o.store.members.get(this.o.store.current) || []).filter((x) => x.node !== this.o.our);
    const items = members.filter((x) => x.node.startsWith(query) || (x.display_name || '').toLowerCase().startsWith(query)).slice(0, 8);
    if (!items.length) return this.closeMentions();
    this.mention = { start: upTo.length - m[2].length - 1, query, items, index: 0 };
    this.renderMentions();
  }

  renderMentions() {
    const { items, index } = this.mention;
    this.list.hidden = false;
    this.text.setAttribute('aria-expanded', 'true');
    this.list.replaceChildren(...items.map((m, i) => el('li', {
      id: `mention-${i}`, role: 'option', 'aria-selected': i === index ? 'true' : 'false', dataset: { node: m.node },
      onmousedown: (e) => { e.preventDefault(); this.mention.index = i; this.pickMention(); },
    }, avatar(m.display_name || m.node, m.color, 'tiny', m.presence), el('span', {}, m.display_name || m.node, ' ', el('small', {}, m.node)))));
    this.text.setAttribute('aria-activedescendant', `mention-${index}`);
  }

  closeMentions() {
    this.mention = null;
    this.list.hidden = true;
    this.text.setAttribute('aria-expanded', 'false');
    this.text.removeAttribute('aria-activedescendant');
  }

  pickMention() {
    const { start, items, index } = this.mention;
    const t = this.text;
    const insert = `@${items[index].node} `;
    t.value = t.value.slice(0, start) + insert + t.value.slice(t.selectionStart);
    const at = start + insert.length;
    t.setSelectionRange(at, at);
    this.closeMentions();
    this.input(true);
  }

  keydown(e) {
    if (this.mention) {
      const n = this.mention.items.length;
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        this.mention.index = (this.mention.index + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
        return this.renderMentions();
      }
      if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); return this.pickMention(); }
      if (e.key === 'Escape') { e.preventDefault(); return this.closeMentions(); }
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    } else if (e.key === 'Escape' && (this.reply || this.editing)) {
      e.preventDefault();
      this.cancel();
    } else if (e.key === 'ArrowUp' && !this.text.value && !e.altKey) {
      const m = this.o.lastOwn();
      if (m) { e.preventDefault(); this.edit(m); }
    }
  }

  /**
   * Send (or save the edit). The box empties at once. A refusal that
   * queued nothing (empty, too long, an edit refused) puts the text back;
   * one the room's host made stays in the list as our failed message, with
   * Retry and Discard, so it is not shown twice.
   */
  async submit() {
    // Enter while a file uploads: send once it is stored.
    if (this.upload) await this.upload;
    const text = this.text.value;
    const editing = this.editing;
    const reply = this.reply;
    const attachment = this.attachment;
    this.text.value = '';
    this.reply = null;
    this.editing = null;
    this.attachment = null;
    this.renderBar();
    this.renderChip();
    this.input(true);
    this.closeMentions();
    // One at a time, so our messages reach the node in the order typed.
    // `data-sending` counts the sends still waiting for their answer.
    this.waiting += 1;
    this.form.dataset.sending = this.waiting;
    this.sending = this.sending.then(async () => {
      try {
        if (editing) await this.o.edit(editing, text);
        else await this.o.send({ text, replyTo: reply ? reply.id : null, attachment });
      } catch (e) {
        this.o.error(e);
        if (!this.text.value) {
          this.text.value = text;
          this.reply = reply;
          this.editing = editing;
          this.attachment = attachment;
          this.renderBar();
          this.renderChip();
          this.input(true);
        }
      } finally {
        this.waiting -= 1;
        if (this.waiting) this.form.dataset.sending = this.waiting;
        else delete this.form.dataset.sending;
      }
    });
    return this.sending;
  }
}
