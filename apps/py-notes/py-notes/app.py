"""py-notes: notes kept by a Python process.

The notes live in the app's state, saved by the node after each call that
changed them, so they survive restarts. Processes call `put`, `get`,
`remove` and `list_notes` by message (`kit i py-notes:py-notes:sys
'{"put": {"key": "a", "text": "hi"}}'`), browsers on this machine use the
page at `/py-notes:py-notes:sys/` and its JSON API under `/api/notes`.
"""

import hearth
from hearth import AppError

# Bounds on what callers may store.
MAX_NOTES = 1000
MAX_TEXT = 4000

app = hearth.App(state={"notes": {}, "writes": 0})


@app.init
def started(state):
    hearth.log.info(f"py-notes started with {len(state['notes'])} notes")


def _check_key(key: str) -> None:
    if not key or len(key) > 64 or not all(c.isalnum() or c in "-_." for c in key):
        raise AppError("bad-key", "keys are 1-64 of letters, digits, '-', '_' and '.'")


@app.local
@app.remote
@app.http("PUT", "/api/notes/:key", access="local-only")
def put(state, key: str, text: str) -> dict:
    """Stores `text` under `key`; answers the note."""
    _check_key(key)
    if not text.strip():
        raise AppError("empty", "a note needs some text")
    if len(text) > MAX_TEXT:
        raise AppError("too-long", f"notes are at most {MAX_TEXT} characters")
    if key not in state["notes"] and len(state["notes"]) >= MAX_NOTES:
        raise AppError("full", f"at most {MAX_NOTES} notes")
    state["notes"][key] = text
    state["writes"] += 1
    return {"key": key, "text": text}


@app.local
@app.remote
@app.http("GET", "/api/notes/:key", access="local-only")
def get(state, key: str) -> dict:
    if key not in state["notes"]:
        raise AppError("not-found", f"no note {key!r}")
    return {"key": key, "text": state["notes"][key]}


@app.local
@app.http("DELETE", "/api/notes/:key", access="local-only")
def remove(state, key: str) -> bool:
    """Whether the note existed."""
    return state["notes"].pop(key, None) is not None


@app.local
@app.remote
@app.http("GET", "/api/notes", access="local-only")
def list_notes(state) -> dict:
    return {"notes": [{"key": k, "text": v} for k, v in sorted(state["notes"].items())],
            "writes": state["writes"]}


@app.http("GET", "/", access="local-only")
def page(state):
    return hearth.http.Reply.html(PAGE)


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>py-notes</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  li { margin: .3em 0; } code { background: #eee; padding: 0 .3em; }
</style>
<h1>py-notes</h1>
<p>Notes kept by a Python process on this Hearth node.</p>
<form id="add"><input id="key" placeholder="key" required>
  <input id="text" placeholder="text" required size="30"> <button>Save</button></form>
<p id="error" style="color: #a00"></p>
<ul id="notes"></ul>
<script>
const api = location.pathname.replace(/\\/$/, "") + "/api/notes";
async function load() {
  const r = await fetch(api);
  const body = await r.json();
  const list = document.getElementById("notes");
  list.replaceChildren(...body.notes.map(n => {
    const li = document.createElement("li");
    li.innerHTML = "<code></code> ";
    li.firstChild.textContent = n.key;
    li.append(n.text);
    return li;
  }));
}
document.getElementById("add").onsubmit = async (e) => {
  e.preventDefault();
  const key = document.getElementById("key").value;
  const text = document.getElementById("text").value;
  const r = await fetch(api + "/" + encodeURIComponent(key), {
    method: "PUT", headers: {"content-type": "application/json"},
    body: JSON.stringify({text})});
  const body = await r.json();
  document.getElementById("error").textContent = r.ok ? "" : body.error.message;
  load();
};
load();
</script>
"""
