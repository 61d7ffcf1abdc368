// The chat page: history over HTTP once, then live messages over a
// WebSocket (no polling). `window.our` comes from our.js.
(() => {
  const base = `/${window.our.process}`;
  const room = new URLSearchParams(location.search).get('room') || 'lobby';
  const $ = (id) => document.getElementById(id);
  const list = $('messages');
  const seen = new Set();
  $('room').textContent = `#${room}`;
  $('who').textContent = `node ${window.our.node} · app ${window.our.process}`;

  function show(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    const li = document.createElement('li');
    li.dataset.id = m.id;
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = m.from;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = m.text;
    li.append(from, text);
    list.append(li);
  }

  const api = `${base}/api/rooms/${encodeURIComponent(room)}/messages`;
  fetch(api).then((r) => r.json()).then((history) => history.forEach(show));

  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}${base}/ws?room=${encodeURIComponent(room)}`);
  ws.onopen = () => { $('ws-state').textContent = 'open'; };
  ws.onclose = () => { $('ws-state').textContent = 'closed'; };
  ws.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.type === 'welcome') $('welcome').textContent = `connection ${m.conn} as ${m.user}`;
    if (m.type === 'message') show(m);
  };

  $('compose').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = $('text').value;
    const r = await fetch(api, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text }),
    });
    if (r.ok) {
      const m = await r.json();
      $('sent').textContent = `sent #${m.id}`;
      $('text').value = '';
    } else {
      $('sent').textContent = `error ${r.status}`;
    }
  });
})();
