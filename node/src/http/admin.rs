//! The admin API (`/admin/*`): install packages, inject messages, list
//! processes. See `crate::api` for the contract.
//!
//! **Invariant:** every admin call passes [`guard`]: the client is on
//! loopback, the `Host` is a loopback name (no DNS rebinding), there is no
//! `Origin` header (no web page), and the secret header matches.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::Http;
use crate::api::{
    ApiError, InjectRequest, InjectResponse, NodeStatus, PackageUpload, ProcessInfo, TraceLine,
    UninstallRequest, SECRET_HEADER,
};
use crate::package;
use crate::types::{Address, ProcessId, SendError, SendErrorKind};

/// Largest package upload accepted: the files' total cap plus room for
/// their paths and the encoding.
const MAX_UPLOAD_BYTES: usize = package::upload::MAX_UPLOAD_TOTAL_BYTES + 4 * 1024 * 1024;

pub fn router(state: Http) -> axum::Router<Http> {
    Router::new()
        .route(
            "/install",
            post(install).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/uninstall", post(uninstall))
        .route("/message", post(message))
        .route("/processes", get(processes))
        .route("/ps", get(ps))
        .route("/trace", get(trace))
        .route("/status", get(status))
        .route("/disk", get(disk))
        .route("/peers", get(peers))
        .route("/watch", get(super::rooms::admin_upgrade))
        .layer(middleware::from_fn_with_state(state, guard))
}

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = ApiError {
        kind: kind.into(),
        message: message.into(),
    };
    (status, Json(body)).into_response()
}

fn send_error(e: SendError) -> Response {
    let status = match e.kind {
        SendErrorKind::UnknownProcess => StatusCode::NOT_FOUND,
        SendErrorKind::CapabilityMissing => StatusCode::FORBIDDEN,
        SendErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        SendErrorKind::MailboxFull => StatusCode::SERVICE_UNAVAILABLE,
        SendErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        SendErrorKind::BadAddress => StatusCode::BAD_REQUEST,
        SendErrorKind::Offline | SendErrorKind::ProcessExited | SendErrorKind::NoAsker => {
            StatusCode::BAD_GATEWAY
        }
    };
    error(
        status,
        e.kind.as_str(),
        format!("{}: {}", e.target, e.detail),
    )
}

fn is_loopback_host(host: &str, port: u16) -> bool {
    let port = port.to_string();
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|name| {
        host == *name || host.strip_prefix(name).and_then(|r| r.strip_prefix(':')) == Some(&port)
    })
}

/// Compare without an early exit, so timing does not reveal the secret.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    given.len() == secret.len()
        && given
            .iter()
            .zip(secret)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn guard(
    State(state): State<Http>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if !peer.ip().is_loopback() {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin API answers loopback clients only",
        );
    }
    if headers.contains_key(header::ORIGIN) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin API refuses calls from web pages",
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_loopback_host(host, state.port) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the admin API refuses Host {host:?}"),
        );
    }
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or(b"");
    if !same_secret(given, state.secret.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("missing or wrong {SECRET_HEADER} header; kit reads it from the node's home"),
        );
    }
    next.run(request).await
}

async fn install(State(state): State<Http>, body: Bytes) -> Response {
    let config = bincode::config::standard().with_limit::<MAX_UPLOAD_BYTES>();
    let upload: PackageUpload = match bincode::serde::decode_from_slice(&body, config) {
        Ok((upload, _)) => upload,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("package upload: {e}"),
            )
        }
    };
    // The new version binds its paths again as it starts; the old one's
    // bindings go only once the upload passed every check.
    let bindings = &state.web.bindings;
    let replace = |package_id: &str| bindings.forget_package(package_id);
    match package::install_with(&state.services, upload.files, replace).await {
        Ok(installed) => Json(installed).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, "install-failed", e.to_string()),
    }
}

async fn uninstall(State(state): State<Http>, Json(req): Json<UninstallRequest>) -> Response {
    match package::uninstall(&state.services, &req.package).await {
        Ok(removed) => {
            state.web.bindings.forget_package(&removed.package);
            Json(removed).into_response()
        }
        Err(e @ package::InstallError::NotInstalled(_)) => {
            error(StatusCode::NOT_FOUND, "not-installed", e.to_string())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "uninstall-failed", e.to_string()),
    }
}

async fn message(State(state): State<Http>, Json(req): Json<InjectRequest>) -> Response {
    let kernel = &state.services.kernel;
    let target = match Address::parse_with_default(&req.target, kernel.our()) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad-address", e.to_string()),
    };
    let body = match serde_json::to_vec(&req.body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad-request", e.to_string()),
    };
    if req.non_block {
        return match state.injector.tell(target, body, None) {
            Ok(id) => Json(InjectResponse { id, body: None }).into_response(),
            Err(e) => send_error(e),
        };
    }
    let timeout = req
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(kernel.limits().default_inject_timeout);
    match state.injector.ask(target, body, None, timeout).await {
        Ok((id, answer)) => {
            let body = match answer.message {
                crate::types::Message::Response(r) => serde_json::from_slice(&r.body)
                    .unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(&r.body).into_owned())
                    }),
                crate::types::Message::Request(_) => serde_json::Value::Null,
            };
            Json(InjectResponse {
                id,
                body: Some(body),
            })
            .into_response()
        }
        Err(e) => send_error(e),
    }
}

async fn processes(State(state): State<Http>) -> Json<Vec<ProcessInfo>> {
    let list = state
        .services
        .kernel
        .processes()
        .into_iter()
        .map(|(id, caps)| ProcessInfo {
            id: id.to_string(),
            public: caps.public,
            networking: caps.networking,
        })
        .collect();
    Json(list)
}

async fn ps(State(state): State<Http>) -> Json<Vec<crate::api::ProcessStatus>> {
    let services = &state.services;
    let mut stats: std::collections::HashMap<_, _> =
        services.stats.snapshot().into_iter().collect();
    let mut list: Vec<crate::api::ProcessStatus> = services
        .kernel
        .process_depths()
        .into_iter()
        .map(|(id, caps, queued_requests, queued_bytes)| {
            let counted = stats.remove(&id);
            crate::api::ProcessStatus {
                id: id.to_string(),
                state: counted.map_or("running", |s| s.life.as_str()).to_string(),
                queued_requests,
                queued_bytes,
                public: caps.public,
                networking: caps.networking,
                restarts: counted.map_or(0, |s| s.restarts),
                handled: counted.map(|s| s.handled),
                memory_bytes: counted.map(|s| s.memory_bytes),
            }
        })
        .collect();
    // Crashed for good: no longer registered, still worth seeing.
    list.extend(stats.into_iter().map(|(id, s)| crate::api::ProcessStatus {
        id: id.to_string(),
        state: s.life.as_str().to_string(),
        queued_requests: 0,
        queued_bytes: 0,
        public: false,
        networking: false,
        restarts: s.restarts,
        handled: Some(s.handled),
        memory_bytes: Some(s.memory_bytes),
    }));
    list.sort_by(|a, b| a.id.cmp(&b.id));
    Json(list)
}

/// How often a trace stream says how many events it dropped, even when
/// nothing happens: a watcher that went away is noticed by this write.
const TRACE_HEARTBEAT: Duration = Duration::from_secs(2);

#[derive(Debug, serde::Deserialize)]
struct TraceQuery {
    process: Option<String>,
    sample: Option<u32>,
}

/// `GET /admin/trace`: one JSON line per routed message (metadata only),
/// through a bounded, sampled, rate-capped watch of the kernel's tap.
async fn trace(
    State(state): State<Http>,
    axum::extract::Query(query): axum::extract::Query<TraceQuery>,
) -> Response {
    use crate::kernel::trace::Filter;
    let process = match query.process.as_deref().map(str::parse::<ProcessId>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, "bad-request", e.to_string()),
    };
    let filter = Filter {
        process,
        sample: query.sample.unwrap_or(1).max(1),
    };
    let watch = match state.services.kernel.trace.watch(filter) {
        Ok(watch) => watch,
        Err(busy) => return error(StatusCode::SERVICE_UNAVAILABLE, "busy", busy.to_string()),
    };
    let start = (watch, tokio::time::Instant::now());
    let lines = futures::stream::unfold(start, |(mut watch, mut reported)| async move {
        let dropped = || TraceLine::Dropped {
            total: watch.dropped.load(std::sync::atomic::Ordering::Relaxed),
        };
        let line = if reported.elapsed() >= TRACE_HEARTBEAT {
            reported = tokio::time::Instant::now();
            dropped()
        } else {
            tokio::select! {
                event = watch.events.recv() => match event {
                    Some(e) => TraceLine::Message {
                        at_us: e.at_us,
                        id: e.id,
                        source: e.source,
                        target: e.target,
                        bytes: e.bytes,
                        kind: e.kind.as_str().to_string(),
                        error: e.error.map(str::to_string),
                    },
                    None => return None,
                },
                _ = tokio::time::sleep_until(reported + TRACE_HEARTBEAT) => {
                    reported = tokio::time::Instant::now();
                    dropped()
                }
            }
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        let chunk = Ok::<_, std::convert::Infallible>(Bytes::from(bytes));
        Some((chunk, (watch, reported)))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

async fn peers(State(state): State<Http>) -> Json<Vec<crate::api::PeerInfo>> {
    match state.net() {
        Some(net) => Json(net.peers()),
        None => Json(Vec::new()),
    }
}

/// Disk use per package (walks the package and drive directories).
async fn disk(State(state): State<Http>) -> Response {
    let services = state.services.clone();
    let usage = tokio::task::spawn_blocking(move || {
        let packages = &services.packages_dir;
        let home = packages.parent().unwrap_or(packages);
        services
            .state
            .disk_usage(packages, &home.join(crate::vfs::VFS_DIR))
    })
    .await;
    match usage {
        Ok(usage) => Json(usage).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn status(State(state): State<Http>) -> Json<NodeStatus> {
    let kernel = &state.services.kernel;
    let net = state.net();
    Json(NodeStatus {
        name: kernel.our().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        http_port: state.port,
        processes: kernel.processes().len(),
        peer_id: net.map(|net| net.peer_id().to_string()),
        bootstrap: net.and_then(|net| net.bootstrap_addr()),
        reachability: net.map(|net| net.reachability()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check_accepts_loopback_names_only() {
        assert!(is_loopback_host("127.0.0.1:8080", 8080));
        assert!(is_loopback_host("localhost:8080", 8080));
        assert!(is_loopback_host("[::1]:8080", 8080));
        assert!(!is_loopback_host("evil.example:8080", 8080));
        assert!(!is_loopback_host("127.0.0.1.evil.example:8080", 8080));
        assert!(!is_loopback_host("localhost:9999", 8080));
    }

    #[test]
    fn secret_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
