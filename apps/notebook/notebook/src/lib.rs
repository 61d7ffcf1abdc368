//! `notebook`: notes kept across restarts, written with `#[app]`.
//!
//! It shows every part of the app macro: sync and async handlers, a map
//! and a data-carrying enum through the interface, typed errors, an app
//! guard that attaches the caller, a per-method guard, an HTTP API with
//! its generated TypeScript client, a WebSocket feed, a timer, and a call
//! to the echo app through echo's generated Rust client.

use std::collections::BTreeMap;
use std::time::Instant;

use hearth_sdk::rpc::WsEvent;
use hearth_sdk::{app, http, log, Address, AppError, Ctx, State};
use serde::{Deserialize, Serialize};

/// echo's generated client (`kit b apps/echo` writes `api/echo.rs`).
pub mod echo {
    use hearth_sdk::json::Value;
    include!("../../../echo/api/echo.rs");
}

/// What a note is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Plain,
    Todo { done: bool },
    Link { url: String },
}

/// One note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
    pub kind: Kind,
    /// What echo answered, for notes stored through `put_echoed`.
    #[serde(default)]
    pub echoed: Option<String>,
}

/// Why a note operation failed; reaches callers as `{"error": {"code", ..}}`.
#[derive(Debug)]
pub enum NoteError {
    Empty,
    Missing(String),
}

impl From<NoteError> for AppError {
    fn from(error: NoteError) -> Self {
        match error {
            NoteError::Empty => AppError::new("empty-note", "a note needs some text"),
            NoteError::Missing(key) => AppError::not_found(format!("no note `{key}`")),
        }
    }
}

/// Round-trip timings of `bench_echo`, in nanoseconds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Timings {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub mean_ns: u64,
}

/// Who called, attached by the app guard for the handlers.
pub struct Caller(pub String);

/// The persisted state.
#[derive(Serialize, Deserialize)]
pub struct Notebook {
    notes: BTreeMap<String, Note>,
    /// Processes (`process:package:publisher`) allowed to `clear`.
    owners: Vec<String>,
    sweeps: u64,
}

impl Default for Notebook {
    fn default() -> Self {
        Notebook {
            notes: BTreeMap::new(),
            owners: vec!["rpc:distro:sys".into()],
            sweeps: 0,
        }
    }
}

#[app(persist = "on_change", guard = Self::identify)]
impl Notebook {
    #[init]
    fn started(&mut self) {
        log::info!("notebook started with {} notes", self.notes.len());
    }

    /// App guard: runs before every call; attaches who is calling.
    fn identify(&self, ctx: &mut Ctx) -> Result<(), AppError> {
        let caller = ctx.caller().process().to_string();
        ctx.attach(Caller(caller));
        Ok(())
    }

    /// Per-method guard of `clear`: only the listed owners.
    fn owners_only(&self, ctx: &mut Ctx) -> Result<(), AppError> {
        let caller = ctx.get::<Caller>().map(|c| c.0.as_str()).unwrap_or("");
        if self.owners.iter().any(|o| o == caller) {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "{caller} may not clear this notebook"
            )))
        }
    }

    /// Stores a note under `key`; watchers of room `notes/<key>` get it
    /// live as an `updated` event.
    #[local]
    #[remote]
    #[http(method = "PUT", path = "/api/notes/:key")]
    #[publish(room = "notes/{key}", action = "updated")]
    fn put(&mut self, key: String, text: String, kind: Kind) -> Result<Note, NoteError> {
        if text.trim().is_empty() {
            return Err(NoteError::Empty);
        }
        let note = Note {
            text,
            kind,
            echoed: None,
        };
        self.notes.insert(key.clone(), note.clone());
        let _ = http::publish_text("notes", &key);
        Ok(note)
    }

    /// Who may watch a room of this notebook (asked by the node's rooms
    /// hub): anyone, for rooms `notes/<key>`; the snapshot is the note.
    #[local]
    fn room_join(&self, room: String, subscriber: String) -> Result<Option<Note>, AppError> {
        let key = room.strip_prefix("notes/").ok_or_else(|| {
            AppError::not_found(format!("no room {room} (rooms are notes/<key>)"))
        })?;
        log::info!("{subscriber} watches {room}");
        Ok(self.notes.get(key).cloned())
    }

    /// The note under `key`.
    #[local]
    #[remote]
    #[http(method = "GET", path = "/api/notes/:key")]
    fn get(&self, key: String) -> Result<Note, NoteError> {
        self.notes.get(&key).cloned().ok_or(NoteError::Missing(key))
    }

    /// Every note, by key.
    #[local]
    #[http(method = "GET", path = "/api/notes")]
    fn list(&self) -> BTreeMap<String, Note> {
        self.notes.clone()
    }

    /// Adds many notes at once; returns how many notes there are now.
    #[local]
    fn import(&mut self, notes: BTreeMap<String, Note>) -> usize {
        self.notes.extend(notes);
        self.notes.len()
    }

    /// Removes every note; only for owners.
    #[local(guard = Self::owners_only)]
    fn clear(&mut self, ctx: &Ctx) -> usize {
        let removed = self.notes.len();
        self.notes.clear();
        log::info!("{} cleared {removed} notes", ctx.caller());
        removed
    }

    /// Sends `text` to the echo app at `echo` (any node) and stores what
    /// came back; the state is saved after the await, before the reply.
    #[local]
    #[remote]
    async fn put_echoed(
        state: State<Self>,
        key: String,
        text: String,
        echo: String,
    ) -> Result<Note, AppError> {
        let target = echo_address(&echo)?;
        let answer = echo::echo(&target, text.clone().into()).await?;
        let note = Note {
            text,
            kind: Kind::Plain,
            echoed: answer.as_str().map(str::to_string),
        };
        state.update(|s| s.notes.insert(key, note.clone()));
        Ok(note)
    }

    /// Times `count` calls of echo's `echo` through the generated client.
    #[local]
    async fn bench_echo(echo: String, count: u64, body_bytes: usize) -> Result<Timings, AppError> {
        let target = echo_address(&echo)?;
        let message = hearth_sdk::json::Value::String("x".repeat(body_bytes));
        let mut samples = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for _ in 0..count {
            let sent = Instant::now();
            echo::echo(&target, message.clone()).await?;
            samples.push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        Ok(timings(samples))
    }

    /// Live feed: every WebSocket client joins the `notes` topic, which
    /// gets the key of each stored note.
    #[ws(path = "/ws")]
    fn feed(&mut self, event: WsEvent) {
        if let WsEvent::Open { conn, .. } = event {
            if let Err(error) = http::join(conn, "notes") {
                log::warn!("join failed: {error}");
            }
        }
    }

    /// Hourly: drops finished to-dos.
    #[timer(every_ms = 3_600_000)]
    fn sweep(&mut self) {
        self.notes
            .retain(|_, n| n.kind != Kind::Todo { done: true });
        self.sweeps += 1;
    }
}

/// `node@echo:echo:sys`, or `echo:echo:sys` on our node.
fn echo_address(text: &str) -> Result<Address, AppError> {
    Address::parse_relative(text, hearth_sdk::our().node())
        .map_err(|e| AppError::bad_request(format!("echo address `{text}`: {e}")))
}

fn timings(mut samples: Vec<u64>) -> Timings {
    samples.sort_unstable();
    let count = samples.len() as u64;
    let at = |p: usize| {
        samples
            .get((samples.len() * p / 100).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Timings {
        count,
        p50_ns: at(50),
        p99_ns: at(99),
        mean_ns: samples.iter().sum::<u64>().checked_div(count).unwrap_or(0),
    }
}
