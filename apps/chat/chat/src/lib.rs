//! `chat`: rooms of live messages, the demo of Hearth's browser UIs.
//!
//! - `GET  /chat:chat:sys/api/rooms/:room/messages`: the room's recent messages.
//! - `POST /chat:chat:sys/api/rooms/:room/messages` `{"text": "..."}`: post one;
//!   it is published to every WebSocket in the room.
//! - `GET  /chat:chat:sys/api/health` (public): `{"ok": true}`.
//! - `WS   /chat:chat:sys/ws?room=NAME`: joins the room's topic; the process
//!   greets the connection with a push of its own; text frames
//!   `{"text": "..."}` are posted like the HTTP call.
//!
//! The UI is `pkg/ui/`. History is kept in memory, [`HISTORY`] per room.

use std::collections::{HashMap, VecDeque};

use hearth_sdk::http::{self, Access, HttpEvent, HttpRequest};
use hearth_sdk::json::json;
use hearth_sdk::{log, Address, Incoming, Process};
use serde::{Deserialize, Serialize};

/// Messages kept per room for the page's first view.
const HISTORY: usize = 50;
/// Most rooms whose history is kept; posts to further rooms still go out
/// live, without history.
const MAX_ROOMS: usize = 1_000;
/// Longest message accepted.
const MAX_TEXT: usize = 2_000;

#[derive(Clone, Serialize)]
struct ChatMessage {
    r#type: &'static str,
    id: u64,
    room: String,
    from: String,
    text: String,
}

#[derive(Deserialize)]
struct Post {
    text: String,
}

struct Chat {
    next_id: u64,
    rooms: HashMap<String, VecDeque<ChatMessage>>,
    /// Open connection -> its room.
    conns: HashMap<u64, String>,
}

fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= 32
        && room
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Process for Chat {
    fn init(our: Address) -> Self {
        for (path, access, ws) in [
            ("/api/rooms/:room/messages", Access::Authenticated, false),
            ("/api/health", Access::Public, false),
            ("/ws", Access::Authenticated, true),
        ] {
            let bound = if ws {
                http::bind_ws(path, access)
            } else {
                http::bind(path, access)
            };
            if let Err(e) = bound {
                log::error!("cannot bind {path}: {e}");
            }
        }
        log::info!("{our} serving its UI at /{}/", our.process());
        Chat {
            next_id: 1,
            rooms: HashMap::new(),
            conns: HashMap::new(),
        }
    }

    fn handle(&mut self, msg: Incoming) {
        let Some(event) = http::event(&msg) else {
            log::warn!("ignored a message from {}", msg.source());
            return;
        };
        match event {
            HttpEvent::Http(req) => self.http(msg.id(), req),
            HttpEvent::WsOpen {
                conn, query, user, ..
            } => {
                let room = query.get("room").cloned().unwrap_or_else(|| "lobby".into());
                if !valid_room(&room) {
                    let _ = http::close(conn);
                    return;
                }
                let _ = http::join(conn, &room);
                let hello = json!({"type": "welcome", "conn": conn, "room": room, "user": user});
                let _ = http::push_text(conn, &hello.to_string());
                self.conns.insert(conn, room);
            }
            HttpEvent::WsMessage { conn, payload, .. } => {
                let Some(room) = self.conns.get(&conn).cloned() else {
                    return;
                };
                match hearth_sdk::json::from_bytes::<Post>(&payload) {
                    Ok(post) => {
                        let _ = self.post(&room, &format!("conn {conn}"), post.text);
                    }
                    Err(e) => {
                        let error = json!({"type": "error", "error": e.to_string()});
                        let _ = http::push_text(conn, &error.to_string());
                    }
                }
            }
            HttpEvent::WsClose { conn } => {
                self.conns.remove(&conn);
            }
        }
    }
}

impl Chat {
    fn http(&mut self, id: u64, req: HttpRequest) {
        let answered = match (req.method.as_str(), req.bound_path.as_str()) {
            ("GET", "/api/health") => http::answer_json(id, &json!({"ok": true})),
            (method, "/api/rooms/:room/messages") => {
                let room = req.params.get("room").cloned().unwrap_or_default();
                if !valid_room(&room) {
                    http::answer(id, 400, &[], b"room names are [a-z0-9-], 1 to 32".to_vec())
                } else if method == "GET" {
                    let list: Vec<&ChatMessage> = self
                        .rooms
                        .get(&room)
                        .map(|q| q.iter().collect())
                        .unwrap_or_default();
                    http::answer_json(id, &list)
                } else if method == "POST" {
                    match hearth_sdk::json::from_bytes::<Post>(&req.body) {
                        Ok(post) => {
                            let from = req.user.unwrap_or_else(|| "anonymous".into());
                            match self.post(&room, &from, post.text) {
                                Some(m) => http::answer_json(id, &m),
                                None => http::answer(id, 400, &[], b"empty or too long".to_vec()),
                            }
                        }
                        Err(e) => http::answer(id, 400, &[], e.to_string().into_bytes()),
                    }
                } else {
                    http::answer(id, 405, &[("allow", "GET, POST")], Vec::new())
                }
            }
            _ => http::answer(id, 404, &[], b"not found".to_vec()),
        };
        if let Err(e) = answered {
            log::warn!("could not answer HTTP request {id}: {e}");
        }
    }

    /// Keep and publish one message; `None` if it is empty or too long.
    fn post(&mut self, room: &str, from: &str, text: String) -> Option<ChatMessage> {
        if text.trim().is_empty() || text.len() > MAX_TEXT {
            return None;
        }
        let message = ChatMessage {
            r#type: "message",
            id: self.next_id,
            room: room.into(),
            from: from.into(),
            text,
        };
        self.next_id += 1;
        if self.rooms.len() < MAX_ROOMS || self.rooms.contains_key(room) {
            let history = self.rooms.entry(room.to_string()).or_default();
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(message.clone());
        }
        match hearth_sdk::json::to_bytes(&message) {
            Ok(bytes) => {
                if let Err(e) = http::publish_text(room, &String::from_utf8_lossy(&bytes)) {
                    log::warn!("publish to {room} failed: {e}");
                }
            }
            Err(e) => log::warn!("cannot encode a message: {e}"),
        }
        Some(message)
    }
}

hearth_sdk::process!(Chat);
