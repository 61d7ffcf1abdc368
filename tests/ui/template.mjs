// Drives Debian's Chromium against the page of a package made by
// `kit new --template ui` (built, installed on a real `hearth` node by
// tests/tests/e2e/template_browser.rs): the page loads /our.js, watches its
// room, signs through its HTTP API, shows entries live on a second page,
// refuses an empty entry, shows markup as text. Saves desktop and phone
// screenshots into SHOTS_DIR; prints one JSON report; exits 0 only if every
// check passed.
//
//   node template.mjs BASE_URL PASSWORD NODE PROCESS_ID SHOTS_DIR
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, password, node, processId, shots] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 30_000;
const checks = [];
const check = (name, ok, detail = '') => checks.push({ name, ok: Boolean(ok), detail: String(detail) });
const until = (page, fn, arg) => page.waitForFunction(fn, arg).then(() => true, () => false);

const profile = mkdtempSync(join(tmpdir(), 'hearth-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 760 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic',
    ],
  });
  context.setDefaultTimeout(TIMEOUT);
  const a = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  a.on('pageerror', (e) => errors.push(String(e)));

  const app = `${base}/${processId}/`;
  await a.goto(app);
  check('the page asks for a login first', a.url().startsWith(`${base}/login`), a.url());
  await a.fill('input[name=password]', password);
  await Promise.all([a.waitForURL((u) => u.pathname !== '/login'), a.click('button[type=submit]')]);
  check('the login leads back to the page', a.url() === app, a.url());
  if (a.url() !== app) await a.goto(app);

  const our = await a.evaluate(() => window.our);
  check('our.js tells the page its node and process',
    our && our.node === node && our.process === processId, JSON.stringify(our));
  const heading = await a.textContent('h1');
  check('the heading names the package in words', heading === 'My book' && (await a.title()) === 'My book · Hearth', heading);
  const live = await until(a, () => document.getElementById('live').dataset.status === 'joined');
  check('the page watches its room live', live, await a.textContent('#live'));
  check('an empty book says so', await a.isVisible('#empty'), await a.textContent('#empty'));

  // Sign from the page: the answer comes back from the process.
  await a.fill('#name', 'Ada');
  await a.fill('#text', 'First to sign.');
  await a.click('button[type=submit]');
  const shown = await until(a, () => [...document.querySelectorAll('#entries li')]
    .some((li) => li.textContent.includes('Ada') && li.textContent.includes('First to sign.')));
  check('a signed entry is shown', shown, await a.textContent('#entries'));
  // The live room can show the entry before the form's own answer clears
  // the box, so wait for that answer too.
  const cleared = await until(a, () => document.querySelector('#text').value === '');
  check('the message box is cleared after signing', cleared, await a.inputValue('#text'));
  check('the empty note is hidden', !(await a.isVisible('#empty')));

  // A second page: it loads what was signed, then hears page a live.
  const b = await context.newPage();
  b.on('pageerror', (e) => errors.push(String(e)));
  await b.goto(app);
  const loaded = await until(b, () => document.querySelectorAll('#entries li').length === 1
    && document.getElementById('live').dataset.status === 'joined');
  check('a second page loads the entries kept', loaded, await b.textContent('#entries'));
  await a.fill('#name', 'Grace');
  await a.fill('#text', 'Signed on page a, seen on page b. <b>not bold</b>');
  await a.click('button[type=submit]');
  const heard = await until(b, () => [...document.querySelectorAll('#entries li')]
    .some((li) => li.textContent.includes('Grace')));
  check('an entry signed on one page shows live on another', heard, await b.textContent('#entries'));
  // Page b can hear the room before page a's form has its answer; the next
  // entry is written only once that answer has cleared page a's box.
  await until(a, () => document.querySelector('#text').value === '');
  const newest = await b.evaluate(() => document.querySelector('#entries li strong').textContent);
  check('the newest entry comes first', newest === 'Grace', newest);
  const markup = await b.evaluate(() => document.querySelectorAll('#entries b').length);
  check('markup in an entry is shown as text', markup === 0, markup);
  const count = await b.evaluate(() => document.querySelectorAll('#entries li').length);
  check('each entry shown once', count === 2, count);

  // The process refuses a blank name; the page says why.
  await a.fill('#name', '   ');
  await a.fill('#text', 'who am I');
  await a.click('button[type=submit]');
  const refused = await until(a, () => document.getElementById('error').textContent === 'Write a name and a few words.');
  check('a blank name is refused with the app\'s message', refused, await a.textContent('#error'));
  const api = await a.request.get(`${app}api/entries`);
  const kept = api.ok() ? await api.json() : null;
  check('the process kept two entries', Array.isArray(kept) && kept.length === 2, JSON.stringify(kept));

  // The newest entry's arrival fade has finished (no running animation).
  await until(a, () => document.getAnimations().length === 0);
  await a.screenshot({ path: join(shots, 'template-ui-desktop.png') });
  await b.close();
  await a.setViewportSize({ width: 390, height: 760 });
  await a.fill('#name', '');
  await a.fill('#text', '');
  const fits = await a.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  check('the page fits a phone', fits);
  await a.screenshot({ path: join(shots, 'template-ui-phone.png'), fullPage: true });
  check('no script errors', errors.length === 0, errors.join('\n'));
} catch (e) {
  check('script ran to the end', false, e && e.stack ? e.stack : e);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
const ok = checks.every((c) => c.ok);
console.log(JSON.stringify({ ok, checks }));
process.exit(ok ? 0 : 1);
