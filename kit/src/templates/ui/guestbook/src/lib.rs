//! `guestbook`: a guest book with a live page. Its HTTP API signs and
//! lists entries; every entry signed is published to the room `entries`,
//! which the page (`pkg/ui/`) watches through the node's `/hearth.js`, so
//! every open page shows a new entry at once, on this node or another.

use hearth_sdk::{app, log, AppError};
use serde::{Deserialize, Serialize};

/// Entries kept; the oldest go first.
const MAX_ENTRIES: usize = 200;

/// Longest name and text, in characters.
const MAX_NAME_CHARS: usize = 40;
const MAX_TEXT_CHARS: usize = 500;

/// The room the page watches.
const ROOM: &str = "entries";

/// One signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: u64,
    pub name: String,
    pub text: String,
}

/// Why signing failed; the page shows the message, tests match the code.
#[derive(Debug)]
pub enum SignError {
    Empty,
    TooLong,
}

impl From<SignError> for AppError {
    fn from(error: SignError) -> Self {
        match error {
            SignError::Empty => AppError::new("empty", "write a name and a few words"),
            SignError::TooLong => AppError::new(
                "too-long",
                format!("a name is at most {MAX_NAME_CHARS} characters, a text {MAX_TEXT_CHARS}"),
            ),
        }
    }
}

/// The state: saved on change, loaded at start.
#[derive(Default, Serialize, Deserialize)]
pub struct Guestbook {
    entries: Vec<Entry>,
    last_id: u64,
}

#[app(persist = "on_change")]
impl Guestbook {
    /// Signs the book; watchers of the room `entries` get the entry live,
    /// as `{"action": "created", "resource": entry, ..}`.
    #[local]
    #[remote]
    #[http(method = "POST", path = "/api/entries")]
    #[publish(room = "entries", action = "created")]
    fn sign(&mut self, name: String, text: String) -> Result<Entry, SignError> {
        let (name, text) = (name.trim().to_string(), text.trim().to_string());
        if name.is_empty() || text.is_empty() {
            return Err(SignError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS || text.chars().count() > MAX_TEXT_CHARS {
            return Err(SignError::TooLong);
        }
        self.last_id += 1;
        let entry = Entry {
            id: self.last_id,
            name,
            text,
        };
        if self.entries.len() == MAX_ENTRIES {
            self.entries.remove(0);
        }
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// Every entry kept, oldest first.
    #[local]
    #[remote]
    #[http(method = "GET", path = "/api/entries")]
    fn entries(&self) -> Vec<Entry> {
        self.entries.clone()
    }

    /// Asked by the node's rooms hub before anyone watches a room of ours:
    /// anyone may watch `entries`; other rooms do not exist.
    #[local]
    fn room_join(&self, room: String, subscriber: String) -> Result<usize, AppError> {
        if room != ROOM {
            return Err(AppError::not_found(format!("no room {room}")));
        }
        log::info!("{subscriber} watches {room}");
        Ok(self.entries.len())
    }
}
