//! What travels between `http-server:distro:sys` and processes, as JSON
//! message bodies. `process-sdk/src/http.rs` mirrors these types (the SDK
//! never depends on the node); the JSON shapes are the contract.
//!
//! Process -> server: [`HttpServerRequest`], answered (when asked) with a
//! JSON `Result<u64, HttpServerError>` (`{"Ok": n}` / `{"Err": ...}`).
//! Server -> process: [`HttpServerEvent`] as a request; `Http` expects an
//! answer ([`HttpAnswer`], body bytes as the blob), WebSocket events are
//! fire-and-forget. Payloads (HTTP bodies, WebSocket frames) travel as the
//! message blob.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who may reach a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Anyone who can reach the node.
    Public,
    /// Clients holding a session cookie (logged in with the node password).
    Authenticated,
    /// Clients on a loopback address only.
    LocalOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpServerRequest {
    /// Bind an HTTP path (under `/<process-id>`). Segments `:name` capture
    /// a path parameter; a last segment `*name` captures the rest.
    Bind {
        path: String,
        access: Access,
    },
    /// Bind a WebSocket path, same pattern rules.
    BindWs {
        path: String,
        access: Access,
    },
    Unbind {
        path: String,
    },
    /// Send the blob to one connection of ours.
    WsPush {
        conn: u64,
        binary: bool,
    },
    /// Send the blob to every connection that joined `topic`; answers the
    /// number of connections it was queued for.
    WsPublish {
        topic: String,
        binary: bool,
    },
    WsJoin {
        conn: u64,
        topic: String,
    },
    WsLeave {
        conn: u64,
        topic: String,
    },
    WsClose {
        conn: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HttpServerError {
    #[error("bad path pattern: {0}")]
    BadPath(String),
    #[error("no open WebSocket connection {0} of this process")]
    NoSuchConnection(u64),
    #[error("bad request: {0}")]
    BadRequest(String),
}

pub type HttpServerReply = Result<u64, HttpServerError>;

/// An HTTP request for a process binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingHttp {
    pub method: String,
    /// Path below the process prefix, such as `/api/rooms/lobby`.
    pub path: String,
    /// The pattern that matched, such as `/api/rooms/:room`.
    pub bound_path: String,
    pub params: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    /// Lower-case names; repeated headers joined with `, `. The session
    /// cookie is removed.
    pub headers: BTreeMap<String, String>,
    /// The logged-in user (the node's name) or `None` for anonymous clients.
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpServerEvent {
    Http(IncomingHttp),
    WsOpen {
        conn: u64,
        path: String,
        query: BTreeMap<String, String>,
        user: Option<String>,
    },
    WsMessage {
        conn: u64,
        binary: bool,
    },
    WsClose {
        conn: u64,
    },
}

/// A process's answer to [`HttpServerEvent::Http`]; the body is the blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpAnswer {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
