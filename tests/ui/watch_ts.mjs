// The notebook's generated TypeScript client (apps/notebook/api/notebook.ts,
// written by `kit b`, used as generated) in headless Chromium, driven by
// tests/tests/e2e/rooms_browser.rs. The file is transpiled with the
// `typescript` package as a bundler would, and loaded into a page of node
// carol as an ES module. The page watches `notes/today` of the notebook on
// node alice through `watch_put` (cross-node), and the notebook on carol
// through `watch_put` + `put` of the same client.
//
// Prints `PUT key text` when it wants alice's notebook to store a note (and
// waits for the reply's JSON on stdin), then one JSON report; exits 0 only
// if every check passed.
//
//   node watch_ts.mjs BASE_URL PASSWORD REMOTE_ADDRESS LOCAL_ADDRESS
import { chromium } from 'playwright-core';
import ts from 'typescript';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [base, password, remote, local] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CLIENT = new URL('../../apps/notebook/api/notebook.ts', import.meta.url);
const TIMEOUT = 20_000;
const checks = [];
const check = (name, ok, detail = '') => checks.push({ name, ok: Boolean(ok), detail: String(detail) });
const same = (x, y) => JSON.stringify(x) === JSON.stringify(y);

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function remotePut(key, text) {
  console.log(`PUT ${key} ${text}`);
  const { value } = await stdin.next();
  return JSON.parse(value);
}

const profile = mkdtempSync(join(tmpdir(), 'hearth-chromium-'));
let context;
try {
  const source = readFileSync(CLIENT, 'utf8');
  const out = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2020 },
    reportDiagnostics: true,
    fileName: 'notebook.ts',
  });
  check('notebook.ts transpiles', (out.diagnostics ?? []).length === 0,
    (out.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('; '));

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

  await page.goto(`${base}/login`);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit]')]);
  // The client takes its `base` from the page's first path segment: a page
  // under the notebook's prefix (a 404 page is fine).
  await page.goto(`${base}/notebook:notebook:sys/watch-test`);
  await page.addScriptTag({ url: `${base}/hearth.js` });
  await page.addScriptTag({
    type: 'module',
    content: `${out.outputText}\nwindow.notebook = { watch_put, put, HearthError, base };\n`,
  });
  await page.waitForFunction(() => window.notebook);
  const clientBase = await page.evaluate(() => window.notebook.base);
  check('client base is the notebook prefix', clientBase === '/notebook:notebook:sys', clientBase);

  const start = (name, address) => page.evaluate(([name, address]) => {
    const log = { events: [], statuses: [] };
    window[name] = log;
    log.handle = window.notebook.watch_put({ key: 'today' }, {
      onEvent: (payload, seq) => log.events.push([seq, payload]),
      onStatus: (status, detail) => log.statuses.push([status, detail]),
    }, address);
  }, [name, address]);
  const joined = (name) => page
    .waitForFunction((n) => window[n].statuses.some(([s]) => s === 'joined'), name)
    .then(() => true, () => false);
  const waitSeq = (name, seq) => page
    .waitForFunction(([n, s]) => window[n].events.some(([x]) => x === s), [name, seq])
    .then(() => true, () => false);
  const summary = (name) => page.evaluate((n) => window[n].events.map(([seq, p]) => [
    seq, p.action, p.room, p.type, p.resource && p.resource.text, p.resource && p.resource.kind,
  ]), name);
  const statuses = (name) => page.evaluate((n) => JSON.stringify(window[n].statuses), name);

  // Cross-node: the notebook on alice, puts from the Rust side.
  await start('remote', remote);
  check('remote watch_put joined', await joined('remote'), await statuses('remote'));
  const one = await remotePut('today', 'one');
  check('remote put one ok', one.ok && one.ok.text === 'one', JSON.stringify(one));
  const empty = await remotePut('today', '');
  check('remote empty put errors', empty.error && empty.error.code === 'empty-note', JSON.stringify(empty));
  const two = await remotePut('today', 'two');
  check('remote put two ok', two.ok && two.ok.text === 'two', JSON.stringify(two));
  await waitSeq('remote', 2);
  const remoteEvents = await summary('remote');
  check('remote events in order, the error published nothing', same(remoteEvents, [
    [1, 'updated', 'notes/today', 'put', 'one', 'plain'],
    [2, 'updated', 'notes/today', 'put', 'two', 'plain'],
  ]), JSON.stringify(remoteEvents));

  // On the page's node: puts through the same generated client.
  await start('local', local);
  check('local watch_put joined', await joined('local'), await statuses('local'));
  const put = (text) => page.evaluate(async (text) => {
    try {
      return { ok: await window.notebook.put({ key: 'today', text, kind: 'plain' }) };
    } catch (e) {
      return {
        thrown: {
          hearthError: e instanceof window.notebook.HearthError,
          code: e.code, status: e.status, message: e.message,
        },
      };
    }
  }, text);
  const first = await put('local one');
  check('client put resolves with the note', first.ok && first.ok.text === 'local one', JSON.stringify(first));
  const bad = await put('');
  check('client put of an empty note throws HearthError empty-note',
    bad.thrown && bad.thrown.hearthError && bad.thrown.code === 'empty-note' && bad.thrown.status >= 400,
    JSON.stringify(bad));
  const second = await put('local two');
  check('client put resolves again', second.ok && second.ok.text === 'local two', JSON.stringify(second));
  await waitSeq('local', 2);
  const localEvents = await summary('local');
  check('local events in order, the error published nothing', same(localEvents, [
    [1, 'updated', 'notes/today', 'put', 'local one', 'plain'],
    [2, 'updated', 'notes/today', 'put', 'local two', 'plain'],
  ]), JSON.stringify(localEvents));
  // The remote watch heard none of the local puts. Read once right away,
  // a stray event still on its way would be missed; so a third remote put
  // follows them, and the remote watch must hear exactly it next.
  const three = await remotePut('today', 'three');
  await waitSeq('remote', 3);
  const remoteAfter = await summary('remote');
  check('remote watch unaffected by local puts', three.ok && same(remoteAfter, [
    [1, 'updated', 'notes/today', 'put', 'one', 'plain'],
    [2, 'updated', 'notes/today', 'put', 'two', 'plain'],
    [3, 'updated', 'notes/today', 'put', 'three', 'plain'],
  ]), JSON.stringify(remoteAfter));
  await page.evaluate(() => { window.remote.handle.close(); window.local.handle.close(); });
} catch (e) {
  check('script ran to the end', false, e && e.stack ? e.stack : e);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
const ok = checks.every((c) => c.ok);
console.log(JSON.stringify({ ok, checks }));
process.exit(ok ? 0 : 1);
