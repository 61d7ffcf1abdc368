//! `webprobe`: the test process of the HTTP tests. It binds one path per
//! behaviour the server must handle: echo, auth levels, a hang (504) and a
//! crash (502), `/set-cookie?c=..` answering that `Set-Cookie` (the
//! server must filter the node's own cookie out), and the WebSocket
//! `/ws?room=NAME` (authenticated), which republishes every text frame to
//! everyone in the room, the sender included.

use std::collections::HashMap;

use hearth_sdk::http::{self, Access, HttpEvent};
use hearth_sdk::json::json;
use hearth_sdk::{log, Address, Incoming, Process};

#[derive(Default)]
struct WebProbe {
    /// Open WebSocket -> the room it joined.
    rooms: HashMap<u64, String>,
}

impl Process for WebProbe {
    fn init(_our: Address) -> Self {
        for (path, access) in [
            ("/echo/:id", Access::Public),
            ("/private", Access::Authenticated),
            ("/local", Access::LocalOnly),
            ("/hang", Access::Public),
            ("/crash", Access::Public),
            ("/set-cookie", Access::Public),
        ] {
            if let Err(e) = http::bind(path, access) {
                log::error!("cannot bind {path}: {e}");
            }
        }
        if let Err(e) = http::bind_ws("/ws", Access::Authenticated) {
            log::error!("cannot bind /ws: {e}");
        }
        WebProbe::default()
    }

    fn handle(&mut self, msg: Incoming) {
        let req = match http::event(&msg) {
            Some(HttpEvent::Http(req)) => req,
            Some(HttpEvent::WsOpen { conn, query, .. }) => {
                let room = query.get("room").cloned().unwrap_or_else(|| "lobby".into());
                if room.is_empty() || room.len() > 32 {
                    let _ = http::close(conn);
                } else if http::join(conn, &room).is_ok() {
                    self.rooms.insert(conn, room);
                }
                return;
            }
            Some(HttpEvent::WsMessage {
                conn,
                binary: false,
                payload,
            }) => {
                if let Some(room) = self.rooms.get(&conn) {
                    let text = String::from_utf8_lossy(&payload);
                    if let Err(e) = http::publish_text(room, &text) {
                        log::warn!("publish to {room} failed: {e}");
                    }
                }
                return;
            }
            Some(HttpEvent::WsClose { conn }) => {
                self.rooms.remove(&conn);
                return;
            }
            _ => return,
        };
        match req.bound_path.as_str() {
            "/hang" => {}
            "/crash" => panic!("webprobe: crash requested"),
            "/set-cookie" => {
                let cookie = req.query.get("c").cloned().unwrap_or_default();
                if let Err(e) = http::answer(msg.id(), 200, &[("set-cookie", &cookie)], Vec::new())
                {
                    log::warn!("cannot answer: {e}");
                }
            }
            _ => {
                let reply = json!({
                    "method": req.method, "path": req.path, "params": req.params, "query": req.query,
                    "user": req.user, "body_len": req.body.len(),
                    "cookie": req.headers.get("cookie"),
                });
                if let Err(e) = http::answer(
                    msg.id(),
                    200,
                    &[("content-type", "application/json"), ("x-probe", "1")],
                    reply.to_string().into_bytes(),
                ) {
                    log::warn!("cannot answer: {e}");
                }
            }
        }
    }
}

hearth_sdk::process!(WebProbe);
