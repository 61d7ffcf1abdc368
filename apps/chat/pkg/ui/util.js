// Small DOM and formatting helpers. Text always goes in as text nodes,
// never as HTML.

/** `el('div.a.b', {attr: v, onclick: f}, child, 'text', ...)` */
export function el(tag, props, ...children) {
  const [name, ...classes] = tag.split('.');
  const node = document.createElement(name || 'div');
  if (classes.length) node.className = classes.join(' ');
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'style') node.style.cssText = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

// Avatar colours that keep white text readable (contrast above 4.5:1).
const COLOURS = ['#c2410c', '#b91c1c', '#7c3aed', '#1d4ed8', '#0f766e', '#15803d', '#a21caf', '#be123c', '#4338ca', '#0369a1'];
export const SWATCHES = COLOURS;

export function colourOf(name) {
  let h = 2166136261;
  for (const c of String(name)) h = Math.imul(h ^ c.codePointAt(0), 16777619) >>> 0;
  return COLOURS[h % COLOURS.length];
}

export function initial(name) {
  const m = String(name || '?').match(/[\p{L}\p{N}]/u);
  return m ? m[0].toUpperCase() : '?';
}

/** An avatar square with the person's initial, and a presence dot. */
export function avatar(name, colour, size = '', presence) {
  const a = el(`span.avatar${size ? '.' + size : ''}`, { 'aria-hidden': 'true', style: `background:${safeColour(colour) || colourOf(name)}` }, initial(name));
  if (presence) a.append(el(`span.dot.${presence}`));
  return a;
}

export function safeColour(c) {
  return /^#[0-9a-fA-F]{6}$/.test(c || '') ? c : null;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

export const timeOf = (ms) => timeFmt.format(new Date(ms));
export const fullTime = (ms) => fullFmt.format(new Date(ms));
export const dayKey = (ms) => { const d = new Date(ms); return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`; };

export function dayLabel(ms) {
  const key = dayKey(ms);
  if (key === dayKey(Date.now())) return 'Today';
  if (key === dayKey(Date.now() - 864e5)) return 'Yesterday';
  return dayFmt.format(new Date(ms));
}

export function bytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)} KB`;
  return `${(n / 1e6).toFixed(1)} MB`;
}

/** `text` as nodes, `@node` mentions of members marked. */
export function richText(text, memberNodes) {
  const out = [];
  const re = /@([a-z0-9][a-z0-9.-]*[a-z0-9])/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (!memberNodes.has(m[1])) continue;
    out.push(text.slice(last, m.index));
    out.push(el('span.at', {}, m[0]));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}
