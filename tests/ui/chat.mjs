// Drives Debian's Chromium against a running Hearth node with the chat app.
// Started by tests/tests/e2e/ui.rs; prints one JSON object and exits 0 only
// if every check passed.
//
//   node chat.mjs BASE_URL NODE_NAME PROCESS_ID PASSWORD
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, node, processId, password] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 10_000;
const checks = [];
const check = (name, ok, detail = '') => checks.push({ name, ok: Boolean(ok), detail: String(detail) });

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
  const app = `${base}/${processId}/`;
  const api = `/${processId}/api/rooms/lobby/messages`;
  const page = context.pages()[0] ?? (await context.newPage());

  // Not logged in: the UI sends us to the login page, the API refuses.
  await page.goto(app);
  check('unauthenticated UI redirects to login', new URL(page.url()).pathname === '/login', page.url());
  const anonStatus = await page.evaluate((u) => fetch(u).then((r) => r.status), api);
  check('unauthenticated API request refused', anonStatus === 401, anonStatus);

  // Log in through the form; the login sends us back to the app.
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(app), page.click('button[type=submit]')]);
  check('login returns to the app', page.url() === app, page.url());

  const our = await page.evaluate(() => window.our);
  check('window.our holds node and process', our && our.node === node && our.process === processId, JSON.stringify(our));

  // The process pushes a welcome to this one connection.
  await page.waitForFunction(() => document.getElementById('ws-state').textContent === 'open');
  await page.waitForFunction(() => document.getElementById('welcome').textContent.startsWith('connection'));
  check('WebSocket push to one connection shown', true, await page.textContent('#welcome'));

  // A second page in the same room, and a third in another room.
  const page2 = await context.newPage();
  await page2.goto(app);
  const page3 = await context.newPage();
  await page3.goto(`${app}?room=kitchen`);
  for (const p of [page2, page3]) {
    await p.waitForFunction(() => document.getElementById('ws-state').textContent === 'open');
  }
  // Marks that a reload would erase.
  for (const p of [page, page2, page3]) await p.evaluate(() => { window.__noReload = true; });

  // The button calls the process endpoint.
  const text = `hello ${Date.now()}`;
  await page.fill('#text', text);
  await page.click('#send');
  await page.waitForFunction(() => /^sent #\d+$/.test(document.getElementById('sent').textContent));
  check('button calls the process endpoint', true, await page.textContent('#sent'));

  // The publish reaches both pages of the room, without reload.
  for (const [name, p] of [['page 1', page], ['page 2', page2]]) {
    const ok = await p
      .waitForFunction((t) => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === t), text)
      .then(() => true, () => false);
    const noReload = await p.evaluate(() => window.__noReload === true);
    check(`publish reaches ${name} over WebSocket without reload`, ok && noReload, `shown=${ok} noReload=${noReload}`);
  }
  await page.waitForTimeout(300);
  const leaked = await page3.evaluate((t) => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === t), text);
  check('another room does not receive it', !leaked, `leaked=${leaked}`);

  // Log out: the API refuses again.
  await page.goto(`${base}/`);
  await Promise.all([page.waitForURL(`${base}/login`), page.click('form[action="/logout"] button')]);
  const afterLogout = await page.evaluate((u) => fetch(u).then((r) => r.status), api);
  check('logout ends the session', afterLogout === 401, afterLogout);
} catch (error) {
  check('browser script ran to the end', false, error && error.stack ? error.stack : error);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

const ok = checks.length > 0 && checks.every((c) => c.ok);
console.log(JSON.stringify({ ok, checks }, null, 2));
process.exit(ok ? 0 : 1);
