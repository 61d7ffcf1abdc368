//! Small helpers at the bottom of `http`, used by the pages, the proxy and
//! the per-package origins alike: HTML escaping, the local-path check for
//! `next=` targets, the redirect to the login page, and the server's own
//! process id. Imports no other
//! `http` module.

use axum::response::{IntoResponse, Redirect, Response};

use crate::types::ProcessId;

/// The HTTP server's own process id, `http-server:distro:sys`: the
/// service processes message to bind paths, and the rooms hub's client.
pub fn server_id() -> ProcessId {
    ProcessId::new("http-server", "distro", "sys")
}

/// `s` safe inside HTML text and double-quoted attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One `/` then a path: printable ASCII only (no whitespace or control
/// characters, which browsers strip: `/\t/evil.com` is `//evil.com`), no
/// `\` (read as `/`), not `//` (another host), and parsed as a URI with
/// neither scheme nor authority.
pub fn is_local_path(n: &str) -> bool {
    n.starts_with('/')
        && !n.starts_with("//")
        && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        && n.parse::<axum::http::Uri>().is_ok_and(|uri| {
            uri.scheme().is_none() && uri.authority().is_none() && uri.path().starts_with('/')
        })
}

/// `path_and_query` made safe for a `next=` query value.
pub fn encode_next(path_and_query: &str) -> String {
    path_and_query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where an unauthenticated browser is sent: the login page, then back.
pub fn login_redirect(path_and_query: &str) -> Response {
    Redirect::to(&format!("/login?next={}", encode_next(path_and_query))).into_response()
}
