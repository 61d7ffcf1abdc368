// Drives Debian's Chromium against one node with the chat app (started by
// tests/tests/e2e/ui.rs): the login page, the home page (app tiles whose
// descriptions show in full or, past four lines, stay inside their tile;
// the badges' line; system section; phone width), opening the chat from its
// tile, logout. Saves screenshots of the login and home pages (desktop,
// phone, dark) into SHOTS_DIR. Prints one JSON object and exits 0 only if
// every check passed.
//
//   node home.mjs BASE_URL NODE_NAME PASSWORD SHOTS_DIR
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, node, password, shots] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 20_000;
const checks = [];
const check = (name, ok, detail = '') => checks.push({ name, ok: Boolean(ok), detail: String(detail) });
const fits = (page) => page.evaluate(() => document.scrollingElement.scrollWidth <= window.innerWidth + 1);
const until = (page, fn, arg) => page.waitForFunction(fn, arg).then(() => true, () => false);
const shot = (page, name) => page.screenshot({ path: join(shots, name), fullPage: true, animations: 'disabled' });
const CHAT_DESCRIPTION = JSON.parse(readFileSync('../../apps/chat/metadata.json', 'utf8')).description;

// The chat tile's description: all of the metadata's text, none of it
// clipped by the line clamp.
const chatDescriptionWhole = (page) => until(page, (text) => {
  const d = document.querySelector('a.tile[href="/chat:chat:sys/"] .desc');
  return d && d.textContent === text && d.scrollHeight <= d.clientHeight + 1;
}, CHAT_DESCRIPTION);

// The tile of the app whose metadata is hostile (ui.rs): its description
// is clamped (four lines at most, the text again as a tooltip), its name
// to two, and nothing sticks out of the tile. Says what is wrong, '' if
// nothing.
const longTileProblems = () => {
  const tile = [...document.querySelectorAll('.tiles .tile')].find((t) => t.querySelector('.desc[title]'));
  if (!tile) return 'no tile with a tooltip description';
  const desc = tile.querySelector('.desc');
  const name = tile.querySelector('.name');
  const lines = (el) => el.clientHeight / parseFloat(getComputedStyle(el).lineHeight);
  const box = tile.getBoundingClientRect();
  const inside = [...tile.querySelectorAll('*')].every((el) => {
    const r = el.getBoundingClientRect();
    return r.left >= box.left - 1 && r.right <= box.right + 1 && r.bottom <= box.bottom + 1;
  });
  const problems = [];
  if (lines(desc) > 4.05) problems.push(`description ${lines(desc)} lines`);
  if (lines(name) > 2.05) problems.push(`name ${lines(name)} lines`);
  if (!(desc.scrollHeight > desc.clientHeight)) problems.push('description not clamped');
  if (tile.scrollWidth > tile.clientWidth + 1) problems.push(`tile scrolls ${tile.scrollWidth}>${tile.clientWidth}`);
  if (!inside) problems.push('content outside the tile');
  if (box.height > 280) problems.push(`tile ${box.height}px high`);
  return problems.join('; ');
};
const longTileBounded = async (page) => (await until(page, `(${longTileProblems})() === ''`))
  ? '' : page.evaluate(longTileProblems);

// Each tile's name and description has a tooltip exactly where it is cut:
// by its line clamp at the width drawn, or by the server (`data-cut`).
// Returns what is wrong ('' if nothing) and which texts are cut.
const tooltipState = () => {
  const wrong = [];
  const cut = [];
  if (document.querySelector('.tiles').dataset.tooltips !== 'ready') return { wrong: ['script not run'], cut };
  for (const el of document.querySelectorAll('.tiles .name, .tiles .desc')) {
    const clamped = el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1;
    const isCut = clamped || el.hasAttribute('data-cut');
    const label = `${el.className} of ${el.closest('.tile').querySelector('.name').textContent.slice(0, 20)}`;
    if (isCut) cut.push(`${label}${clamped ? '' : ' (server)'}`);
    if (isCut !== el.hasAttribute('title') || (isCut && el.title !== el.textContent)) wrong.push(`${label}: cut=${isCut} title=${el.title.slice(0, 20)}`);
  }
  return { wrong, cut };
};
const tooltipsRight = async (page) => {
  await until(page, `(${tooltipState})().wrong.length === 0`);
  return page.evaluate(tooltipState);
};
// The tiles' heights, rounded: every one the same.
const tileHeights = (page) => page.$$eval('.tiles .tile', (ts) => ts.map((t) => Math.round(t.getBoundingClientRect().height)));
const even = (hs) => hs.length > 1 && hs.every((h) => h === hs[0]);
// The open System table at phone width: nothing scrolls sideways, and
// each row's values sit under their labels inside the card.
const systemProblems = () => {
  const card = document.querySelector('details.system .card');
  const problems = [];
  if (card.scrollWidth > card.clientWidth + 1) problems.push(`card scrolls ${card.scrollWidth}>${card.clientWidth}`);
  const box = card.getBoundingClientRect();
  for (const td of card.querySelectorAll('td')) {
    const r = td.getBoundingClientRect();
    if (r.width && (r.right > box.right + 1 || r.left < box.left - 1)) problems.push(`${td.textContent} outside`);
    if (r.width && !td.dataset.label) problems.push(`${td.textContent} unlabelled`);
  }
  if (!card.querySelector('td[data-label=Kind]') || getComputedStyle(card.querySelector('tr')).display !== 'block') problems.push('not stacked');
  return problems.join('; ');
};

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

  // Not logged in: home and the app send us to the login page; the API refuses.
  await page.goto(`${base}/`);
  check('unauthenticated home redirects to login', new URL(page.url()).pathname === '/login', page.url());
  const anon = await page.evaluate(() => fetch('/chat:chat:sys/api/rooms').then((r) => r.status));
  check('unauthenticated API request refused', anon === 401, anon);
  const label = await page.$eval('label[for=password]', (l) => l.textContent).catch(() => '');
  check('login field is labelled', label === 'Password', label);
  check('login page names the node', (await page.textContent('.login')).includes(node));
  await shot(page, 'home-login.png');

  // A wrong password is said, in an alert tied to the field.
  await page.fill('input[name=password]', 'not the password');
  // The answer is a new page at the same address: wait for its load, not
  // the current page's (waitForLoadState would return at once).
  await Promise.all([page.waitForEvent('load'), page.click('button[type=submit]')]);
  const alert = await page.textContent('[role=alert]').catch(() => '');
  const described = await page.getAttribute('#password', 'aria-describedby');
  check('wrong password shown', alert === 'Wrong password.' && described.includes('login-error'), `${alert} / ${described}`);
  await shot(page, 'home-login-wrong.png');

  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit]')]);
  check('login returns home', page.url() === `${base}/`, page.url());

  // Home: the node, the chat tile with its icon, an app without UI, system collapsed.
  check('home shows the node name', (await page.textContent('h1')) === node);
  const tile = await page.$('a.tile[href="/chat:chat:sys/"]');
  const icon = tile && await page.waitForFunction(() => {
    const i = document.querySelector('a.tile[href="/chat:chat:sys/"] img');
    return i && i.complete && i.naturalWidth > 0;
  }).then(() => true, () => false);
  check('chat tile with its icon links to the app', tile && icon, `tile=${!!tile} icon=${icon}`);
  const plain = await page.$$eval('.tiles .tile', (ts) => ts.map((t) => t.querySelector('.name').textContent + ':' + (t.querySelector('.icon img') ? 'img' : t.querySelector('.icon').textContent)));
  check('app without UI gets a letter avatar', plain.some((t) => /^webprobe:W$/i.test(t)), JSON.stringify(plain));
  await page.evaluate(() => document.fonts.ready);
  check('chat description shows in full on a desktop', await chatDescriptionWhole(page),
    await page.$eval('a.tile[href="/chat:chat:sys/"] .desc', (d) => `${d.scrollHeight}/${d.clientHeight} ${d.textContent}`).catch((e) => e));
  const longDesktop = await longTileBounded(page);
  check('a hostile description stays inside its tile on a desktop', longDesktop === '', longDesktop);
  // Three apps at 1280 px: one row, the tiles as wide as the column allows.
  const row = await page.$$eval('.tiles .tile', (ts) => ts.map((t) => [Math.round(t.getBoundingClientRect().top), Math.round(t.getBoundingClientRect().width)]));
  check('the tiles share the desktop row', row.length === 3 && row.every(([top, w]) => top === row[0][0] && w >= 300), JSON.stringify(row));
  // The version reads on the badges' line, centred with them.
  const line = await page.evaluate(() => {
    const mid = (el) => { const r = el.getBoundingClientRect(); return r.top + r.height / 2; };
    const pills = [...document.querySelectorAll('.hero .badges .pill')].map(mid);
    const version = document.querySelector('.hero .badges .version');
    return version && pills.length > 0 ? pills.map((p) => Math.abs(p - mid(version))) : null;
  });
  check('version sits centred beside the badges', line && line.every((d) => d <= 1.5), JSON.stringify(line));
  const desktopHeights = await tileHeights(page);
  check('the tiles of a row are even, one long text making none taller', even(desktopHeights), JSON.stringify(desktopHeights));
  const wide = await tooltipsRight(page);
  check("a tooltip only where a tile's text is cut on a desktop", wide.wrong.length === 0
    && wide.cut.length === 2 && wide.cut.every((c) => c.includes('Unbreakable')), JSON.stringify(wide));
  // Two 300 px tiles to a row: the chat's description no longer fits its
  // three lines, and the page says so with a tooltip (back at 1280, none).
  await page.setViewportSize({ width: 654, height: 800 });
  const narrow = await tooltipsRight(page);
  check('a tooltip where the clamp cuts at a narrower width', narrow.wrong.length === 0
    && narrow.cut.some((c) => c === 'desc of Chat'), JSON.stringify(narrow));
  await page.setViewportSize({ width: 1280, height: 800 });
  const again = await tooltipsRight(page);
  check('the tooltip goes when the text fits again', again.wrong.length === 0 && !again.cut.some((c) => c === 'desc of Chat'), JSON.stringify(again));
  check('no peers says so', (await page.textContent('section[aria-labelledby=peers-h] .empty').catch(() => '')).startsWith('No peers connected yet'));
  await shot(page, 'home-desktop.png');
  const closed = await page.$eval('details.system', (d) => !d.open);
  await page.click('details.system summary');
  const services = await page.$$eval('details.system tbody tr', (rows) => rows.map((r) => r.cells[0].textContent));
  check('system services under a collapsed section', closed && services.includes('http-server:distro:sys'), JSON.stringify(services));
  check('home page fits a desktop', await fits(page));
  await page.setViewportSize({ width: 390, height: 844 });
  check('home page fits a phone', await fits(page));
  const system = (await until(page, `(${systemProblems})() === ''`)) ? '' : await page.evaluate(systemProblems);
  check('the System table reads at phone width, nothing sideways', system === '', system);
  const phoneHeights = await tileHeights(page);
  check('the tiles are even at phone width', even(phoneHeights), JSON.stringify(phoneHeights));
  const phoneTips = await tooltipsRight(page);
  check("a tooltip only where a tile's text is cut on a phone", phoneTips.wrong.length === 0, JSON.stringify(phoneTips));
  check('chat description shows in full on a phone', await chatDescriptionWhole(page));
  const longPhone = await longTileBounded(page);
  check('a hostile description stays inside its tile on a phone', longPhone === '', longPhone);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'home-phone.png');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 1280, height: 800 });
  await shot(page, 'home-dark.png');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 375, height: 740 });

  // The chat opens from its tile and goes live, at phone width too.
  await Promise.all([page.waitForURL(`${base}/chat:chat:sys/`), page.click('a.tile[href="/chat:chat:sys/"]')]);
  const live = await page.waitForSelector('#app[data-live=joined]').then(() => true, () => false);
  check('chat opens from its tile and goes live', live);
  check('chat fits a phone', await fits(page));
  await page.setViewportSize({ width: 1280, height: 800 });

  // Log out: the API refuses again.
  await page.goto(`${base}/`);
  await Promise.all([page.waitForURL(`${base}/login`), page.click('form[action="/logout"] button')]);
  const after = await page.evaluate(() => fetch('/chat:chat:sys/api/rooms').then((r) => r.status));
  check('logout ends the session', after === 401, after);
} catch (error) {
  check('browser script ran to the end', false, error && error.stack ? error.stack : error);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

const ok = checks.length > 0 && checks.every((c) => c.ok);
console.log(JSON.stringify({ ok, checks }, null, 2));
process.exit(ok ? 0 : 1);
