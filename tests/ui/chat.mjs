// Two browsers, one per node, chatting through the chat app (started by
// tests/tests/e2e/chat_browser.rs with alice.os and bob.os as real nodes).
// Prints `DO kill|stop|start NODE` when it wants a node killed (SIGKILL),
// stopped (SIGTERM) or started, and waits for a line on stdin; saves the
// README's screenshots into SHOTS_DIR; prints one JSON report last and exits
// 0 only if every check passed.
//
//   node chat.mjs ALICE_URL BOB_URL PASSWORD SHOTS_DIR
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [aliceBase, bobBase, password, shots] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const APP = '/chat:chat:sys/';
/** Generous: two nodes, two browsers and cargo's others on 2 cores. */
const TIMEOUT = 30_000;
/** Node restarts, reconnect backoff (up to 10 s) and catch-up. */
const SLOW = 90_000;
const LATENCY_SAMPLES = 8;
const HISTORY = 200;
const checks = [];
const check = (name, ok, detail = '') => {
  checks.push({ name, ok: Boolean(ok), detail: String(detail).slice(0, 2000) });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} ${ok ? '' : String(detail).slice(0, 300)}`);
};
const wait = (p) => p.then(() => true, (e) => { lastError = e; return false; });
let lastError = null;

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function node(verb, name) {
  console.log(`DO ${verb} ${name}`);
  await stdin.next();
}

const profiles = [];
async function browser(base, width = 1280, height = 800) {
  const profile = mkdtempSync(join(tmpdir(), 'hearth-chat-'));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width, height },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
  });
  context.setDefaultTimeout(TIMEOUT);
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(base + '/login');
  await page.screenshot({ path: join(shots, 'login.png') });
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
  return { context, page: await openChat(context, base, page) };
}

async function openChat(context, base, page) {
  page = page || (await context.newPage());
  page.on('dialog', (d) => d.accept());
  page.on('pageerror', (e) => console.log(`page error on ${base}: ${e.message}`));
  await page.goto(base + APP);
  await page.waitForSelector('#app[data-ready=true]');
  await page.waitForSelector('#app[data-live=joined]');
  return page;
}

/** Write and send with Enter, as a person would. */
async function say(page, text) {
  await page.fill('#composer-text', text);
  await page.press('#composer-text', 'Enter');
}

const msg = (text) => `.msg:has(.text:has-text("${text}"))`;
/**
 * Hover a message and click one of its tools (shown on hover). The list is
 * drawn anew on every change, and a redraw can move the message from under
 * the pointer between the hover and the click: then hover again.
 */
async function tool(page, text, button) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    try {
      await page.hover(msg(text), { timeout: 2000 });
      await page.click(`${msg(text)} .tools ${button}`, { timeout: 2000 });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
}
/** Our own message `text` has its answer: the host numbered it (sent, id > 0). */
const ownSent = (page, text) => wait(page.waitForFunction((t) => [...document.querySelectorAll('.msg[data-delivery=sent]')]
  .some((m) => Number(m.dataset.id) > 0 && m.querySelector('.text')?.firstChild?.textContent === t), text));
const textsOf = (page, re) => page.$$eval('.msg .text', (nodes, src) => {
  const r = new RegExp(src);
  return nodes.map((n) => n.firstChild ? n.firstChild.textContent : '').filter((t) => r.test(t));
}, re.source);
const showsText = (page, text, timeout = TIMEOUT) => wait(page.waitForSelector(`.msg .text:has-text("${text}")`, { timeout }));
const percentile = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]; };

/** The message `text` of `room` as `page`'s node stores it (its latest page, through the API). */
async function stored(page, room, text) {
  const found = await page.evaluate(async ([room, text]) => {
    const r = await fetch('/chat:chat:sys/api/messages', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room, limit: 50, before_id: null }) });
    return (await r.json()).messages.find((m) => m.text === text) || null;
  }, [room, text]);
  if (!found) throw new Error(`${text} is not stored in ${room}`);
  return found;
}

/**
 * Hold back the answer to `page`'s next call of the chat's `method`: the
 * call reaches our node and is answered as ever, but the page gets the
 * answer only at `release()`, late, as a slow network would hand it over.
 * `answer` is the held body; `delivered` resolves once the page has it.
 */
async function hold(page, method) {
  let release;
  const released = new Promise((r) => { release = r; });
  let got;
  const answer = new Promise((r) => { got = r; });
  let handed;
  const delivered = new Promise((r) => { handed = r; });
  await page.route(`**/chat:chat:sys/api/${method}`, async (route) => {
    const response = await route.fetch();
    got(await response.json());
    await released;
    await route.fulfill({ response });
    handed();
  }, { times: 1 });
  return {
    answer,
    // The page has read the answer and drawn what it made of it (two frames).
    release: async () => {
      release();
      await delivered;
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 100)))));
    },
  };
}

/** The status line under our message `text` on this page ('' if none), or null if the message is not shown. */
const statusOf = (text) => {
  const m = [...document.querySelectorAll('.msg')].find((e) => e.querySelector('.text')?.firstChild?.textContent === text);
  return m ? (m.querySelector('.status.failed')?.textContent || '') : null;
};
/** Seconds a rate limit's words say to wait (NaN if they name none). */
const secondsLeft = (status) => Number((/Try again in (\d+) s\./.exec(status || '') || [])[1] || NaN);
/** Whether `ok(status of text)` comes true on `page` within `timeout`. */
async function statusBecomes(page, text, ok, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (ok(await page.evaluate(statusOf, text))) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A small picture drawn in the page, as PNG bytes. */
async function picture(page) {
  const b64 = await page.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 480; c.height = 300;
    const g = c.getContext('2d');
    const sky = g.createLinearGradient(0, 0, 0, 300);
    sky.addColorStop(0, '#1e3a8a'); sky.addColorStop(0.55, '#f97316'); sky.addColorStop(1, '#fde68a');
    g.fillStyle = sky; g.fillRect(0, 0, 480, 300);
    g.fillStyle = '#fff7ed'; g.beginPath(); g.arc(240, 210, 58, 0, Math.PI * 2); g.fill();
    g.fillStyle = '#1f1b16';
    g.beginPath(); g.moveTo(0, 300); g.lineTo(0, 220); g.lineTo(120, 160); g.lineTo(230, 240); g.lineTo(330, 170); g.lineTo(480, 230); g.lineTo(480, 300); g.fill();
    return c.toDataURL('image/png').split(',')[1];
  });
  return Buffer.from(b64, 'base64');
}

/**
 * Send `n` messages through our node's API (no UI), waiting out the rate
 * limit: a message the host refuses comes back `failed` and is kept on our
 * node; it is sent again (the same message) once the wait the host named
 * is over.
 */
async function seed(page, room, prefix, from, n) {
  return page.evaluate(async ([room, prefix, from, n]) => {
    const call = (method, args) => fetch(`/chat:chat:sys/api/${method}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(args),
    }).then((r) => r.json().then((body) => ({ ok: r.ok, body })), () => ({ ok: false, body: null }));
    let i = from;
    let tries = 0;
    let failed = null;
    while (i < from + n) {
      const r = failed
        ? await call('retry', { room, client_id: failed.client_id })
        : await call('send', { room, text: `${prefix} ${i}`, reply_to: null, attachment: null });
      const m = r.ok ? r.body : null;
      if (m && m.delivery === 'sent') { i += 1; tries = 0; failed = null; continue; }
      if (m && m.delivery === 'failed') failed = m;
      const why = (m && m.error) || (r.body && r.body.error) || {};
      const s = why.code === 'rate-limited' && /in (\d+) s/.exec(why.message || '');
      if (++tries > 200) return `stuck at ${i}: ${JSON.stringify(r.body)}`;
      await new Promise((res) => setTimeout(res, s ? Number(s[1]) * 1000 + 100 : 1000));
    }
    return 'ok';
  }, [room, prefix, from, n]);
}

let alice;
let bob;
const latency = { samples: [] };
try {
  alice = await browser(aliceBase);
  bob = await browser(bobBase);
  const A = alice.page;
  let B = bob.page;

  // Profiles, through the profile dialog.
  for (const [page, name, colour] of [[A, 'Alice', '#be123c'], [B, 'Bob', '#0369a1']]) {
    await page.click('#profile-button');
    await page.fill('#d-display', name);
    await page.click(`.swatches input[value="${colour}"]`);
    await page.click('#dialog-ok');
    await page.waitForSelector(`#me-name:text-is("${name}")`);
  }

  // alice creates a private room and invites bob.os; bob joins from his page.
  await A.click('#new-room');
  await A.fill('#d-name', 'Launch plan');
  await A.check('input[name=kind][value=private]');
  await A.click('#dialog-ok');
  const created = await wait(A.waitForSelector('#rooms a[aria-current=page]:has-text("Launch plan")'));
  const room = created ? await A.getAttribute('#rooms a[aria-current=page]', 'data-room') : '';
  check('alice creates a room', created && /@alice\.os$/.test(room), room);
  await A.click('#members-button');
  await A.fill('#invite-node', 'bob.os');
  await A.click('#invite-form button[type=submit]');
  check('bob sees the invitation live', await wait(B.waitForSelector(`#invites [data-room="${room}"]`, { timeout: SLOW })), lastError);
  await B.click(`#invites [data-room="${room}"] [data-action=accept]`);
  check('bob joins from his page', await wait(B.waitForSelector(`#rooms a[aria-current=page][data-room="${room}"]`)), lastError);
  await A.waitForSelector('#member-list li[data-node="bob.os"]', { timeout: SLOW }).catch(() => {});
  await A.click('#members-close');

  // Messages both ways, a mention.
  await say(A, 'Morning @bob.os! The launch checklist is pinned in this room.');
  check("alice's message shown live on bob's page", await showsText(B, 'launch checklist is pinned'), lastError);
  check('mention highlighted on bob\'s page', await wait(B.waitForSelector('.msg.mentions-me .at:text-is("@bob.os")')), lastError);
  await B.fill('#composer-text', 'Great, reading');
  check('typing indicator shown on alice\'s page', await wait(A.waitForSelector('#typing:has-text("is typing")')), lastError);
  await B.fill('#composer-text', 'Great, reading it now. The demo runs on two nodes?');
  await B.press('#composer-text', 'Enter');
  check("bob's message shown live on alice's page", await showsText(A, 'The demo runs on two nodes?'), lastError);

  // A reply (bob, through the message's tools), shown inline on alice's side.
  await say(A, 'Yes: alice.os hosts the room, bob.os keeps a copy.');
  await showsText(B, 'bob.os keeps a copy');
  await tool(B, 'Yes: alice.os hosts the room, bob.os keeps a copy.', '.reply');
  await say(B, 'So I can read it even when your node is off. Nice.');
  check('reply shown inline on alice\'s page', await wait(A.waitForSelector(`${msg('So I can read it even when your node is off. Nice.')} .quote:has-text("bob.os keeps a copy")`)), lastError);

  // An edit (alice: ↑ in the empty box edits her last message) and a delete.
  await say(A, 'Ship date is Fridya');
  await showsText(B, 'Ship date is Fridya');
  // ↑ edits the last of ours the host numbered: bob's page can show the
  // message before alice's page has its own answer, so wait for that.
  await ownSent(A, 'Ship date is Fridya');
  await A.press('#composer-text', 'ArrowUp');
  await A.waitForSelector('#reply-bar[data-mode=edit]');
  await A.fill('#composer-text', 'Ship date is Friday 🚢');
  await A.press('#composer-text', 'Enter');
  check('edit shown on bob\'s page', await wait(B.waitForSelector(`${msg('Ship date is Friday 🚢')} .edited`)), lastError);
  await say(A, 'oops, wrong room');
  await showsText(B, 'oops, wrong room');
  await ownSent(A, 'oops, wrong room');
  await tool(A, 'oops, wrong room', '.delete');
  check('delete shown on bob\'s page', await wait(B.waitForSelector('.msg.deleted .text:has-text("This message was deleted.")')), lastError);

  // A reaction from bob, whose answer reaches his page late: after alice's
  // reaction, made meanwhile, gave the message a newer version. The late
  // answer is a real older copy; bob's page keeps the newer one.
  const target = msg('Ship date is Friday 🚢');
  const beforeReaction = await stored(A, room, 'Ship date is Friday 🚢');
  const slowReact = await hold(B, 'react');
  await tool(B, 'Ship date is Friday 🚢', '.react');
  await B.click(`${target} .tools .picker [data-emoji="🎉"]`);
  check('reaction shown on alice\'s page', await wait(A.waitForSelector(`${target} .reaction:has-text("🎉 1")`)), lastError);
  await tool(A, 'Ship date is Friday 🚢', '.react');
  await A.click(`${target} .tools .picker [data-emoji="❤️"]`);
  await A.mouse.move(0, 0);
  // alice's reaction has its answer, and bob's page has both from events.
  await A.waitForSelector(`${target} .reaction.mine:has-text("❤️ 1")`);
  const both = await wait(B.waitForSelector(`${target} .reaction:has-text("❤️ 1")`));
  const late = await slowReact.answer;
  await slowReact.release();
  const reacted = await stored(A, room, 'Ship date is Friday 🚢');
  const shown = await B.$$eval(`${target} .reaction`, (rs) => rs.map((r) => r.textContent).sort());
  check('a late older copy never replaces newer reactions', both && late.version > beforeReaction.version
    && late.version < reacted.version && !('❤️' in late.reactions)
    && JSON.stringify(shown) === JSON.stringify(['❤️ 1', '🎉 1'].sort()),
  JSON.stringify({ before: beforeReaction.version, late: late.version, late_reactions: late.reactions, stored: reacted.version, shown }));

  // An image uploaded to bob's node, previewed on alice's page.
  await B.setInputFiles('#file', { name: 'sunset.png', mimeType: 'image/png', buffer: await picture(B) });
  await B.waitForSelector('#attachment-chip:has-text("📎 sunset.png")');
  await say(B, 'Cover picture for the launch post:');
  const preview = await wait(A.waitForFunction(() => [...document.querySelectorAll('.attachment img')]
    .some((i) => i.alt === 'sunset.png' && i.complete && i.naturalWidth === 480), null, { timeout: SLOW }));
  check("image from bob previewed on alice's page", preview, lastError);
  await say(B, '@alice.os looks good to me 👍');
  await showsText(A, 'looks good to me');

  // A direct message from bob: alice gets it in her sidebar with an unread badge.
  await B.click('#new-dm');
  await B.fill('#d-node', 'alice.os');
  await B.click('#dialog-ok');
  await B.waitForSelector('#dms a[aria-current=page]');
  await say(B, 'Coffee after the launch? ☕');
  check('direct message shown in alice\'s sidebar with an unread badge',
    await wait(A.waitForSelector('#dms a:has-text("Coffee after the launch?") .badge', { timeout: SLOW })), lastError);
  await B.click(`#rooms a[data-room="${room}"]`);

  // The README's screenshots: desktop (alice), phone width (bob).
  await A.click('#members-button');
  await A.waitForSelector('#member-list li[data-node="bob.os"][data-presence=online]').catch(() => {});
  await A.waitForSelector('#toast', { state: 'hidden' });
  await A.waitForFunction(() => !document.getElementById('typing').textContent);
  await A.screenshot({ path: join(shots, 'chat-desktop.png') });
  await A.click('#members-close');
  await B.setViewportSize({ width: 390, height: 780 });
  // The narrower room is laid out again, taller: its images drawn, the
  // newest message stays in view.
  check('the newest message stays in view at phone width', await wait(B.waitForFunction(() => {
    const s = document.getElementById('scroller');
    return [...document.querySelectorAll('.msg img')].every((i) => i.complete)
      && s.scrollHeight - s.scrollTop - s.clientHeight < 2;
  })), lastError);
  await B.screenshot({ path: join(shots, 'chat-phone.png') });
  await B.click('#back');
  await B.screenshot({ path: join(shots, 'chat-phone-rooms.png') });
  await B.click(`#rooms a[data-room="${room}"]`);
  await B.setViewportSize({ width: 1280, height: 800 });

  // Latency: from the send in one page until shown in the other page, across nodes.
  for (const [from, to, label] of [[A, B, 'a'], [B, A, 'b']]) {
    await to.evaluate(() => {
      window.__seen = {};
      new MutationObserver(() => {
        for (const t of document.querySelectorAll('.msg .text')) {
          const s = t.firstChild ? t.firstChild.textContent : '';
          if (s.startsWith('latency ') && !(s in window.__seen)) window.__seen[s] = performance.timeOrigin + performance.now();
        }
      }).observe(document.getElementById('messages'), { childList: true, subtree: true });
    });
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const text = `latency ${label}${i}`;
      const sent = await from.evaluate((t) => {
        document.getElementById('composer-text').value = t;
        const at = performance.timeOrigin + performance.now();
        document.getElementById('composer').requestSubmit();
        return at;
      }, text);
      await to.waitForFunction((t) => window.__seen && t in window.__seen, text);
      const seen = await to.evaluate((t) => window.__seen[t], text);
      latency.samples.push(seen - sent);
      // The next one leaves once this one's answer is back on its page.
      if (!(await ownSent(from, text))) throw new Error(`${text} never marked sent: ${lastError}`);
    }
  }
  latency.p50_ms = +percentile(latency.samples, 0.5).toFixed(1);
  latency.p99_ms = +percentile(latency.samples, 0.99).toFixed(1);
  latency.n = latency.samples.length;
  check('latency measured', latency.samples.length === 2 * LATENCY_SAMPLES, JSON.stringify(latency));

  // Refusals the UI shows: empty, too long, rate limit.
  await B.fill('#composer-text', '   ');
  await B.press('#composer-text', 'Enter');
  check('empty message refused in the UI', await wait(B.waitForSelector('#error[data-code=empty-message]:not([hidden])')), lastError);
  await B.fill('#composer-text', 'x'.repeat(4001));
  await B.press('#composer-text', 'Enter');
  check('too-long message refused in the UI', await wait(B.waitForSelector('#error[data-code=too-long]:not([hidden])')), lastError);
  const errorText = await B.textContent('#error');
  await B.fill('#composer-text', '');
  // Fill bob's minute at alice's host through the API (the refused filler
  // discarded), then one more from the UI.
  const filled = await B.evaluate(async (room) => {
    const call = (method, args) => fetch(`/chat:chat:sys/api/${method}`, { method: 'POST',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(args) }).then((r) => r.json());
    for (let i = 0; i < 40; i++) {
      const m = await call('send', { room, text: `filler ${i}`, reply_to: null, attachment: null });
      if (m.delivery === 'failed' && m.error.code === 'rate-limited') {
        await call('discard', { room, client_id: m.client_id });
        return `limited after ${i}`;
      }
    }
    return 'never limited';
  }, room);
  await say(B, 'one more');
  // The refusal is said once: its answer is in (no send waits), the
  // message stays in the list as failed with the host's reason, Retry and
  // Discard, and the box is left empty (the text is not put back too).
  const limited = await wait(B.waitForFunction(() => {
    // (The discarded filler's failed copy has gone from the list too.)
    if (document.getElementById('composer').dataset.sending
      || document.querySelectorAll('.msg[data-delivery=failed]').length !== 1) return false;
    const copies = [...document.querySelectorAll('.msg')].filter((m) => m.querySelector('.text')?.firstChild?.textContent === 'one more');
    const status = copies.length === 1 && copies[0].dataset.delivery === 'failed' && copies[0].querySelector('.status.failed');
    return Boolean(status) && /^⚠ Not sent: Slow down: at most 30 messages a minute/.test(status.textContent)
      && [...status.querySelectorAll('button')].map((b) => b.textContent).join() === 'Retry,Discard'
      && document.getElementById('composer-text').value === '';
  }));
  const said = await B.$$eval('.msg', (ms) => ms.filter((m) => m.querySelector('.text')?.firstChild?.textContent === 'one more')
    .map((m) => `${m.dataset.delivery}: ${m.querySelector('.text').textContent}`));
  check('rate limit shown in the UI', limited, `${filled}; ${JSON.stringify(said)}; box: ${await B.inputValue('#composer-text')}; ${lastError} (too-long said: ${errorText})`);
  await B.mouse.move(0, 0);
  await B.screenshot({ path: join(shots, 'chat-refused.png') });
  check('rate limit said once: one failed message, the box empty', limited && said.length === 1
    && (await B.inputValue('#composer-text')) === '', JSON.stringify(said));
  // The wait the refusal names counts down as it sits.
  const firstStatus = await B.evaluate(statusOf, 'one more');
  const counted = await statusBecomes(B, 'one more', (s) => secondsLeft(s) <= secondsLeft(firstStatus) - 2);
  check('the rate limit\'s wait counts down as it sits', secondsLeft(firstStatus) > 2 && counted,
    `${firstStatus} -> ${await B.evaluate(statusOf, 'one more')}`);

  // Discard is final: a copy of the discarded message that comes late
  // (here the send's own answer, held back until after the Discard) does
  // not bring it back, on this page or on bob's other open page.
  const B2 = await openChat(bob.context, bobBase);
  await B2.click(`#rooms a[data-room="${room}"]`);
  const slowSend = await hold(B, 'send');
  await say(B, 'one more, late');
  const failed = (s) => /^⚠ Not sent/.test(s || '');
  const shownFailed = (await statusBecomes(B, 'one more, late', failed)) && (await statusBecomes(B2, 'one more, late', failed));
  await B.click(`${msg('one more, late')} .status.failed button:text-is("Discard")`);
  const gone = (s) => s === null;
  const discarded = (await statusBecomes(B, 'one more, late', gone)) && (await statusBecomes(B2, 'one more, late', gone));
  check('a failed message discarded from the list, on both of bob\'s pages', shownFailed && discarded,
    JSON.stringify({ shownFailed, discarded }));
  const lateSend = await slowSend.answer;
  await slowSend.release();
  await B.waitForFunction(() => !document.getElementById('composer').dataset.sending);
  const after = [await B.evaluate(statusOf, 'one more, late'), await B2.evaluate(statusOf, 'one more, late')];
  check('a late copy of a discarded message does not bring it back', lateSend.delivery === 'failed'
    && lateSend.text === 'one more, late' && after.every(gone), JSON.stringify({ late: lateSend.delivery, after }));
  await B2.close();

  // Once the wait is over the words say so, and Retry then sends it.
  const retryNow = await statusBecomes(B, 'one more', (s) => /You can try again now\.(Retry|$)/.test(s || ''), SLOW);
  const nowSaid = await B.evaluate(statusOf, 'one more');
  await B.click(`${msg('one more')} .status.failed button:text-is("Retry")`);
  check('"try again now" once the wait is over, and Retry then sends it', retryNow && await ownSent(B, 'one more'),
    `${nowSaid} ${lastError}`);

  // Presence: bob's only page closes, alice sees him offline; back online when it opens again.
  await A.click('#members-button');
  await A.waitForSelector('#member-list li[data-node="bob.os"][data-presence=online]', { timeout: SLOW }).catch(() => {});
  await B.close();
  check('presence: bob offline on alice\'s page after his page closed',
    await wait(A.waitForSelector('#member-list li[data-node="bob.os"][data-presence=offline]', { timeout: SLOW })), lastError);
  B = await openChat(bob.context, bobBase);
  await B.click(`#rooms a[data-room="${room}"]`);
  check('presence: bob online again',
    await wait(A.waitForSelector('#member-list li[data-node="bob.os"][data-presence=online]', { timeout: SLOW })), lastError);
  await A.click('#members-close');

  // alice's node stops while bob sends 5: pending on bob's page, then delivered in order.
  await node('stop', 'alice.os');
  await wait(B.waitForSelector('#host-banner:not([hidden])', { timeout: SLOW }));
  for (let i = 1; i <= 5; i++) await say(B, `queued ${i}`);
  const pending = await wait(B.waitForFunction(() => [...document.querySelectorAll('.msg[data-delivery=pending] .text')]
    .filter((t) => /^queued \d/.test(t.textContent)).length === 5, null, { timeout: SLOW }));
  check('alice stopped: bob\'s 5 marked pending', pending, lastError);
  await node('start', 'alice.os');
  const delivered = await wait(B.waitForFunction(() => {
    const q = [...document.querySelectorAll('.msg')].filter((m) => /^queued \d/.test(m.querySelector('.text')?.firstChild?.textContent || ''));
    return q.length === 5 && q.every((m) => m.dataset.delivery === 'sent' && Number(m.dataset.id) > 0);
  }, null, { timeout: SLOW }));
  const order = await textsOf(B, /^queued \d$/);
  check('alice restarted: bob\'s 5 delivered in order', delivered && JSON.stringify(order) === JSON.stringify([1, 2, 3, 4, 5].map((i) => `queued ${i}`)), JSON.stringify(order));
  await A.waitForSelector('#app[data-live=joined]', { timeout: SLOW });

  // bob's node is killed while alice sends 20; once restarted, bob's page shows all 20 once, in order.
  await node('kill', 'bob.os');
  for (let i = 1; i <= 20; i++) await say(A, `while down ${i}`);
  await A.waitForFunction(() => [...document.querySelectorAll('.msg[data-delivery=sent] .text')].filter((t) => /^while down \d+$/.test(t.firstChild?.textContent)).length === 20, null, { timeout: SLOW });
  await node('start', 'bob.os');
  // bob's page comes back live and catches up: every one of the 20 shown
  // exactly once, in order (it may pass through fewer while it catches up).
  const want = Array.from({ length: 20 }, (_, i) => `while down ${i + 1}`);
  const all20 = await wait(B.waitForFunction((want) => document.getElementById('app').dataset.live === 'joined'
    && JSON.stringify([...document.querySelectorAll('.msg .text')].map((t) => t.firstChild?.textContent || '')
      .filter((t) => /^while down \d+$/.test(t))) === JSON.stringify(want), want, { timeout: SLOW }));
  // A barrier: bob's page catches up in the background after it shows
  // `joined`, so a late history page could still add or move one of the
  // 20. One more message from alice, seen on bob's page, comes after it.
  await say(A, 'after the 20');
  await wait(B.waitForFunction(() => [...document.querySelectorAll('.msg .text')]
    .some((t) => t.firstChild?.textContent === 'after the 20'), null, { timeout: SLOW }));
  const got = await textsOf(B, /^while down \d+$/);
  check('bob killed: all 20 shown once, in order, after restart', all20 && JSON.stringify(got) === JSON.stringify(want), JSON.stringify(got));

  // History: a public room hosted by bob, 200 messages from both, paged back from alice's page.
  await B.waitForSelector('#app[data-live=joined]', { timeout: SLOW });
  await B.click('#new-room');
  await B.fill('#d-name', 'Archive');
  await B.click('#dialog-ok');
  await B.waitForSelector('#rooms a[aria-current=page]:has-text("Archive")');
  const archive = await B.getAttribute('#rooms a[aria-current=page]', 'data-room');
  await A.click('#join-room');
  await A.fill('#d-address', archive);
  await A.click('#dialog-ok');
  await A.waitForSelector(`#rooms a[aria-current=page][data-room="${archive}"]`, { timeout: SLOW });
  const half = HISTORY / 2;
  const seeded = await Promise.all([seed(A, archive, 'history a', 1, half), seed(B, archive, 'history b', 1, half)]);
  // A fresh page: it loads the latest page, then older ones as it scrolls up.
  let olderPages = 0;
  A.on('request', (r) => {
    if (r.url().endsWith('/api/messages') && /"before_id":\d/.test(r.postData() || '')) olderPages += 1;
  });
  await A.reload();
  await A.waitForSelector('#app[data-ready=true]');
  await A.click(`#rooms a[data-room="${archive}"]`);
  await A.waitForFunction(() => document.querySelectorAll('.msg .text').length >= 50);
  let pages = 0;
  for (let i = 0; i < 40; i++) {
    const done = await A.$eval('#history-state', (s) => s.dataset.hasMore === 'false');
    if (done) break;
    const shown = await A.$$eval('.msg .text', (ts) => ts.length);
    await A.$eval('#scroller', (s) => { s.scrollTop = 0; });
    pages += 1;
    // At the top an older page loads: wait for it (or the beginning); if
    // none came, scroll up again.
    await A.waitForFunction((n) => document.querySelectorAll('.msg .text').length > n
      || document.getElementById('history-state').dataset.hasMore === 'false', shown, { timeout: 5000 }).catch(() => {});
  }
  const history = await textsOf(A, /^history [ab] \d+$/);
  const unique = new Set(history);
  const inOrder = ['a', 'b'].every((w) => JSON.stringify(history.filter((t) => t.startsWith(`history ${w} `)))
    === JSON.stringify(Array.from({ length: half }, (_, i) => `history ${w} ${i + 1}`)));
  const start = await A.textContent('#history-state');
  check('history paged back to the first message',
    seeded.every((s) => s === 'ok') && history.length === HISTORY && unique.size === HISTORY && inOrder && /beginning/.test(start) && olderPages >= 3,
    `seeded=${seeded} shown=${history.length} unique=${unique.size} inOrder=${inOrder} older pages=${olderPages} scrolls=${pages} state=${start}`);

  // The node's home pages, desktop and phone width.
  await A.goto(aliceBase + '/');
  await A.screenshot({ path: join(shots, 'home-desktop.png') });
  await A.setViewportSize({ width: 390, height: 844 });
  await A.screenshot({ path: join(shots, 'home-phone.png'), fullPage: true });
} catch (e) {
  check('script ran to the end', false, e && e.stack ? e.stack : e);
} finally {
  for (const b of [alice, bob]) if (b) await b.context.close().catch(() => {});
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
}
const ok = checks.length > 0 && checks.every((c) => c.ok);
console.log(JSON.stringify({ ok, latency: { p50_ms: latency.p50_ms, p99_ms: latency.p99_ms, n: latency.n }, checks }));
process.exit(ok ? 0 : 1);
