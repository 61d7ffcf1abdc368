//! `webprobe`: the test process of the HTTP tests. It binds one path per
//! behaviour the server must handle: echo, auth levels, a hang (504) and a
//! crash (502), and `/set-cookie?c=..` answering that `Set-Cookie` (the
//! server must filter the node's own cookie out).

use hearth_sdk::http::{self, Access, HttpEvent};
use hearth_sdk::json::json;
use hearth_sdk::{log, Address, Incoming, Process};

struct WebProbe;

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
        WebProbe
    }

    fn handle(&mut self, msg: Incoming) {
        let Some(HttpEvent::Http(req)) = http::event(&msg) else {
            return;
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
