// Drives Debian's Chromium against node carol (started by
// tests/tests/e2e/rooms_browser.rs): a page loads /hearth.js and watches a
// room owned by a process on another node. Prints `PUBLISH a b` when it wants
// events a..=b published (and waits for a line on stdin), then one JSON
// report; exits 0 only if every check passed.
//
//   node rooms.mjs BASE_URL PASSWORD OWNER_ADDRESS ROOM
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [base, password, owner, room] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 20_000;
const checks = [];
const check = (name, ok, detail = '') => checks.push({ name, ok: Boolean(ok), detail: String(detail) });
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const same = (x, y) => JSON.stringify(x) === JSON.stringify(y);

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function publish(a, b) {
  console.log(`PUBLISH ${a} ${b}`);
  await stdin.next();
}

const profile = mkdtempSync(join(tmpdir(), 'hearth-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic',
    ],
  });
  context.setDefaultTimeout(TIMEOUT);
  const page = context.pages()[0] ?? (await context.newPage());

  const js = await page.request.get(`${base}/hearth.js`);
  check('hearth.js served without login', js.status() === 200 && (await js.text()).includes('hearth'), js.status());

  await page.goto(`${base}/login`);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit]')]);

  // Count the page's WebSockets (and keep them, to drop one later).
  await page.evaluate(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) { super(...args); window.__sockets.push(this); }
    };
  });
  await page.addScriptTag({ url: `${base}/hearth.js` });

  const start = (name, from, r = room) => page.evaluate(([name, owner, r, from]) => {
    const log = { events: [], statuses: [], gaps: [] };
    window[name] = log;
    log.handle = hearth.watch(owner, r, {
      from,
      onEvent: (payload, seq) => log.events.push([seq, payload.i]),
      onGap: (next) => log.gaps.push(next),
      onStatus: (status) => log.statuses.push(status),
    });
  }, [name, owner, r, from]);
  const seqsOf = (name) => page.evaluate((n) => window[n].events.map(([s]) => s), name);
  const statusesOf = (name) => page.evaluate((n) => window[n].statuses, name);
  const waitSeq = (name, seq) => page
    .waitForFunction(([n, s]) => window[n].events.some(([x]) => x === s), [name, seq])
    .then(() => true, () => false);

  await start('a', null);
  const joined = await page
    .waitForFunction(() => window.a.statuses.includes('joined'))
    .then(() => true, () => false);
  check('first watch joined', joined, JSON.stringify(await statusesOf('a')));

  await publish(1, 20);
  await waitSeq('a', 20);
  const a20 = await page.evaluate(() => window.a.events);
  check('events 1..20 in order', same(a20, range(1, 20).map((i) => [i, i])), JSON.stringify(a20));

  // A second watch of the same room on the same page, resuming after 5.
  await start('b', 5);
  await waitSeq('b', 20);
  const b20 = await seqsOf('b');
  check('second watch on the same page replays 6..20', same(b20, range(6, 20)), JSON.stringify(b20));
  await start('p', null, 'private-room');
  const refused = await page
    .waitForFunction(() => window.p.statuses.includes('refused'))
    .then(() => true, () => false);
  check('private room refused', refused, JSON.stringify(await statusesOf('p')));
  const sockets = await page.evaluate(() => window.__sockets.length);
  check('one WebSocket for all watches', sockets === 1, sockets);

  // Drop the socket: every watch hears "reconnecting", and resumes from
  // its cursor; events published meanwhile arrive once each.
  await page.evaluate(() => window.__sockets[0].close());
  const reconnecting = await page
    .waitForFunction(() => window.a.statuses.includes('reconnecting') && window.b.statuses.includes('reconnecting'))
    .then(() => true, () => false);
  check('reconnecting reported', reconnecting, JSON.stringify(await statusesOf('a')));
  await publish(21, 30);
  await waitSeq('a', 30);
  await waitSeq('b', 30);
  const a30 = await seqsOf('a');
  const b30 = await seqsOf('b');
  check('resumed after reconnect: 1..30 once each', same(a30, range(1, 30)), JSON.stringify(a30));
  check('second watch resumed: 6..30 once each', same(b30, range(6, 30)), JSON.stringify(b30));
  const rejoined = await page
    .waitForFunction(() => window.a.statuses.filter((s) => s === 'joined').length >= 2)
    .then(() => true, () => false);
  check('joined again after reconnect', rejoined, JSON.stringify(await statusesOf('a')));
  await page.evaluate(() => { window.a.handle.close(); window.b.handle.close(); });
} catch (e) {
  check('script ran to the end', false, e && e.stack ? e.stack : e);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
const ok = checks.every((c) => c.ok);
console.log(JSON.stringify({ ok, checks }));
process.exit(ok ? 0 : 1);
