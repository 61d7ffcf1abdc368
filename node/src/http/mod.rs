//! The node's HTTP server: the home page and the admin API used by `kit`.

pub mod admin;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::native::NativeEndpoint;
use crate::services::Services;

/// What HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub services: Arc<Services>,
    pub injector: Arc<NativeEndpoint>,
    pub secret: Arc<str>,
    pub port: u16,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(home))
        .nest("/admin", admin::router(state.clone()))
        .with_state(state)
}

/// Serve until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

async fn home(State(state): State<HttpState>) -> Html<String> {
    let kernel = &state.services.kernel;
    let rows: String = kernel
        .processes()
        .iter()
        .map(|(id, caps)| {
            format!(
                "<li><code>{}</code>{}</li>",
                escape(&id.to_string()),
                if caps.public { " (public)" } else { "" }
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>{name} · Hearth</title>\
         <h1>{name}</h1><p>Hearth node {version}</p><h2>Processes</h2><ul>{rows}</ul>",
        name = escape(kernel.our()),
        version = env!("CARGO_PKG_VERSION"),
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
