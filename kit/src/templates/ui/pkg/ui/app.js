// The page: signs through the app's HTTP API and shows every entry live,
// through one watch of the app's room `entries` (never a poll). An entry
// may come twice (our own POST's answer and its room event): it is kept
// once, by id.

const our = window.our;
const base = '/' + location.pathname.split('/')[1]; // `/<process-id>`
const $ = (id) => document.getElementById(id);
const shown = new Map(); // id -> entry

// The package name (`my-book`) as a heading: `My book`.
const heading = document.querySelector('h1');
heading.textContent = heading.textContent.replace(/-/g, ' ').replace(/^./, (c) => c.toUpperCase());
document.title = heading.textContent + ' · Hearth';

async function call(method, path, args) {
  const init = { method, headers: { 'content-type': 'application/json' } };
  if (args) init.body = JSON.stringify(args);
  const response = await fetch(base + path, init);
  const body = await response.json().catch(() => null);
  if (response.status === 401) location.href = '/login?next=' + encodeURIComponent(location.pathname);
  if (!response.ok) throw new Error((body && body.error && body.error.message) || response.statusText);
  return body;
}

function show(entry) {
  if (shown.has(entry.id)) return;
  shown.set(entry.id, entry);
  const li = document.createElement('li');
  const who = document.createElement('strong');
  who.textContent = entry.name; // text, never HTML: entries come from anyone
  const text = document.createElement('p');
  text.textContent = entry.text;
  li.append(who, text);
  li.dataset.id = entry.id;
  // Newest first.
  const later = [...$('entries').children].find((c) => Number(c.dataset.id) < entry.id);
  $('entries').insertBefore(li, later || null);
  $('empty').hidden = true;
}

function setLive(status) {
  $('live').textContent = status === 'joined' ? 'live' : status;
  $('live').dataset.status = status;
}

window.hearth.watch(`${our.node}@${our.process}`, 'entries', {
  onEvent(event) {
    if (event && event.action === 'created') show(event.resource);
  },
  async onStatus(status) {
    setLive(status);
    // On (re)joining, catch up with what was signed meanwhile.
    if (status === 'joined') (await call('GET', '/api/entries')).forEach(show);
  },
});

$('sign').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('error').textContent = '';
  const text = $('text').value;
  // One entry at a time: a second click while this one is on its way
  // would sign it twice.
  const button = $('sign').querySelector('button[type=submit]');
  button.disabled = true;
  try {
    show(await call('POST', '/api/entries', { name: $('name').value, text }));
    // Clear the box only if it still holds what was sent: the writer may
    // have started the next message while this one was on its way.
    if ($('text').value === text) $('text').value = '';
  } catch (err) {
    // The app's message, as a sentence.
    $('error').textContent = err.message.charAt(0).toUpperCase() + err.message.slice(1) + '.';
  } finally {
    button.disabled = false;
  }
});

// A refusal stays until the writer changes what was refused.
$('sign').addEventListener('input', () => { $('error').textContent = ''; });
