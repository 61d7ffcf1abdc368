//! Browser-facing HTTP settings: plain data, read by `http`.

use std::net::IpAddr;
use std::time::Duration;

/// Default bytes buffered per WebSocket client: 256 frames of up to
/// `max_body_bytes` could hold 2 GiB for one client; 1 MiB is seconds of
/// chat-sized traffic, and 10,000 stalled clients hold at most 10 GiB.
pub const WS_CLIENT_BUFFER_BYTES: usize = 1024 * 1024;

/// A password that never shows in `Debug` output or logs.
#[derive(Clone, Default)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

/// Browser-facing HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Set (or replace) the node password at boot. Without it, a node that
    /// has none lets the first loopback visitor of `/login` choose one.
    pub password: Option<Password>,
    /// Mark the session cookie `Secure`: set when the node is served over
    /// TLS (for example behind a TLS-terminating proxy).
    pub secure_cookies: bool,
    pub session_ttl: Duration,
    /// How long a process may take to answer an HTTP request (then 504).
    pub request_timeout: Duration,
    /// Largest request body (then 413) and WebSocket message.
    pub max_body_bytes: usize,
    /// Most open WebSocket connections (then 503).
    pub max_ws_connections: usize,
    /// Frames buffered per WebSocket client; a client that lets its buffer
    /// fill is dropped.
    pub ws_client_buffer: usize,
    /// Payload bytes buffered per WebSocket client; past it the client is
    /// dropped too ([`WS_CLIENT_BUFFER_BYTES`] by default).
    pub ws_client_buffer_bytes: usize,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` names the client
    /// (`--trusted-proxy`). From anyone else, a request carrying those
    /// headers is never local.
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins the node is also served under, such as
    /// `https://hearth.example.com` behind a proxy (`--origin`). Loopback
    /// names and IP literals with the node's port are always its own.
    pub origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            password: None,
            secure_cookies: false,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 8 * 1024 * 1024,
            max_ws_connections: 10_000,
            ws_client_buffer: 256,
            ws_client_buffer_bytes: WS_CLIENT_BUFFER_BYTES,
            trusted_proxies: Vec::new(),
            origins: Vec::new(),
        }
    }
}
