//! The node's HTTP server (axum): the home page, login, `/our.js`,
//! `/hearth.js` and `/hearth/ws` (live rooms for pages),
//! `/metrics`, the admin API used by `kit`, and everything under
//! `/<process-id>/` (process bindings, WebSockets, app UIs).
//!
//! - `pages.rs`: home, login/logout, `/our.js`, `/metrics`.
//! - `proxy.rs`: `/<process-id>/...`: bindings, then UI files.
//! - `bindings.rs`: the binding table and the `http-server:distro:sys`
//!   service processes message to bind paths and push on WebSockets.
//! - `ws.rs`: WebSocket connections and topics.
//! - `rooms.rs`: `/hearth/ws`, pages watching live rooms through the
//!   rooms hub; `hearth.js` is its browser side, served at `/hearth.js`.
//! - `auth.rs`: the node password and sessions.
//! - `origin.rs`: client address (trusted proxies, mapped IPv4), the
//!   `Host` allow-list and the `Origin` check.
//! - `isolate.rs`: per-package origins (`*.localhost`) and the session
//!   handover to them.
//! - `throttle.rs`: login throttling (check slots, lockout per address).
//! - `ui.rs`: static UI files and `our.js`.
//! - `wire.rs`: the JSON messages between the server and processes.
//! - `admin.rs`: the guarded admin API.
//! - `common.rs`: the bottom of `http`: HTML escaping, local-path check,
//!   login redirect.

pub mod admin;
pub mod auth;
pub mod bindings;
pub mod common;
pub mod isolate;
pub mod origin;
mod pages;
mod proxy;
pub mod rooms;
mod throttle;
pub mod ui;
pub mod wire;
pub mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use axum::serve::IncomingStream;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;

pub use crate::config::{HttpConfig, Password, WS_CLIENT_BUFFER_BYTES};
use crate::kernel::caps::ProcessCaps;
use crate::native::NativeEndpoint;
use crate::net::Net;
use crate::services::Services;
use auth::{Auth, AuthError};
use bindings::{BindingTable, HttpServerService};
use ws::WsHub;

/// The browser side of the node: auth, bindings, WebSockets.
pub struct Web {
    pub config: HttpConfig,
    pub auth: Arc<Auth>,
    pub login: throttle::LoginThrottle,
    /// One-time codes and sessions of isolated packages' origins.
    pub handoff: isolate::Handoff,
    pub bindings: Arc<BindingTable>,
    pub hub: Arc<WsHub>,
    /// Rooms watched by pages (`/hearth/ws`) and their hub subscriptions.
    pub rooms: Arc<rooms::RoomWatches>,
    /// `http-server:distro:sys`: forwards requests and WebSocket events.
    pub server: Arc<NativeEndpoint>,
    /// `HttpConfig::origins` as lower-case `host[:port]`.
    origins: Vec<String>,
    trusted_proxies: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Register(#[from] crate::kernel::AlreadyRunning),
    #[error("{0:?} is not an http(s) origin such as https://hearth.example.com")]
    BadOrigin(String),
}

impl Web {
    /// Open the password store and register `http-server:distro:sys`.
    pub fn start(
        services: &Arc<Services>,
        config: &HttpConfig,
        home: &Path,
    ) -> Result<Arc<Self>, WebError> {
        let origins = config
            .origins
            .iter()
            .map(|o| origin::origin_authority(o).ok_or_else(|| WebError::BadOrigin(o.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let password = config.password.as_ref().map(|p| p.0.as_str());
        let our = services.kernel.our();
        let auth = Arc::new(Auth::open(
            home,
            our,
            password,
            config.session_ttl,
            config.secure_cookies,
        )?);
        let bindings = Arc::new(BindingTable::default());
        let hub = Arc::new(WsHub::new(
            services.clone(),
            config.max_ws_connections,
            config.ws_client_buffer,
            config.ws_client_buffer_bytes,
        ));
        let rooms = Arc::new(rooms::RoomWatches::new(hub.clone()));
        let service = HttpServerService {
            bindings: bindings.clone(),
            hub: hub.clone(),
            rooms: rooms.clone(),
            our: our.into(),
        };
        // Public so every process may bind; system so it may forward
        // requests to processes that are not public, and subscribe to
        // rooms on other nodes for pages (never taking peers' requests).
        let caps = ProcessCaps {
            public: true,
            networking: false,
            system: true,
        };
        let server = NativeEndpoint::start(
            services,
            bindings::process_id(),
            caps,
            Some(Arc::new(service)),
        )?;
        rooms.set_server(&server);
        Ok(Arc::new(Self {
            config: config.clone(),
            auth,
            login: throttle::LoginThrottle::default(),
            handoff: isolate::Handoff::default(),
            bindings,
            hub,
            rooms,
            server,
            origins,
            trusted_proxies: config
                .trusted_proxies
                .iter()
                .copied()
                .map(origin::normalize)
                .collect(),
        }))
    }
}

/// What HTTP handlers share, behind one `Arc` ([`Http`]): the router and
/// the front service clone the state for every request, and one reference
/// count is cheaper than six.
pub type Http = Arc<HttpState>;

/// The fields of [`Http`].
pub struct HttpState {
    pub services: Arc<Services>,
    pub injector: Arc<NativeEndpoint>,
    pub secret: Arc<str>,
    pub port: u16,
    pub web: Arc<Web>,
    /// The peer-to-peer network, set once it has started (after HTTP).
    pub net: Arc<OnceLock<Arc<Net>>>,
}

impl HttpState {
    /// The network, once started.
    pub fn net(&self) -> Option<&Arc<Net>> {
        self.net.get()
    }

    /// The node's origins and trusted proxies, for checking a request.
    pub fn policy(&self) -> origin::Policy<'_> {
        origin::Policy {
            port: self.port,
            trusted_proxies: &self.web.trusted_proxies,
            origins: &self.web.origins,
        }
    }
}

/// The node's routes; [`Front`] runs in front of them.
fn routes(state: Http) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", axum::routing::post(pages::logout))
        .route("/our.js", get(pages::our_js))
        .route("/hearth.js", get(pages::hearth_js))
        .route("/hearth/ws", get(rooms::upgrade))
        .route("/metrics", get(pages::metrics))
        .route(isolate::ENTER_PATH, get(isolate::enter))
        .nest("/admin", admin::router(state.clone()))
        .fallback(app)
        .with_state(state)
}

async fn app(
    State(state): State<Http>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let site = state.policy().site(request.headers());
    proxy::app(state, peer, request, site).await
}

/// Makes one [`Front`] per connection, knowing its peer's address.
#[derive(Clone)]
struct MakeFront {
    routes: Router,
    state: Http,
}

impl<'a> Service<IncomingStream<'a, TcpListener>> for MakeFront {
    type Response = Front;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Front, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, TcpListener>) -> Self::Future {
        std::future::ready(Ok(Front {
            routes: self.routes.clone(),
            state: self.state.clone(),
            peer: *stream.remote_addr(),
        }))
    }
}

/// Every request of one connection: refused on a package's origin unless
/// it is that package's (`isolate::wrong_site`), then served and counted
/// with its latency. A path under a process (its first segment has a `:`,
/// which none of the node's own routes has) goes straight to
/// `proxy::app`, with the `Host`'s site read once for both; any other
/// request goes through the router. A `HEAD` or `CONNECT` also goes
/// through the router, which shapes those responses.
#[derive(Clone)]
struct Front {
    routes: Router,
    state: Http,
    peer: SocketAddr,
}

type FrontFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = FrontFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> FrontFuture {
        let started = Instant::now();
        let state = self.state.clone();
        let site = state.policy().site(request.headers());
        if let Some(refused) = isolate::wrong_site(&site, request.uri().path()) {
            counted(&state, &refused, started);
            return Box::pin(std::future::ready(Ok(refused)));
        }
        if under_a_process(&request) {
            let peer = self.peer;
            return Box::pin(async move {
                let response = proxy::app(state.clone(), peer, request, site).await;
                counted(&state, &response, started);
                Ok(response)
            });
        }
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let routed = self.routes.call(request);
        Box::pin(async move {
            let Ok(response) = routed.await;
            counted(&state, &response, started);
            Ok(response)
        })
    }
}

/// Whether `proxy::app` is the request's only possible handler: its path's
/// first segment names a process (has a `:`), and it is no `HEAD` or
/// `CONNECT`.
fn under_a_process(request: &Request) -> bool {
    let method = request.method();
    if method == Method::HEAD || method == Method::CONNECT {
        return false;
    }
    let path = request.uri().path().trim_start_matches('/');
    let first = path.split('/').next().unwrap_or_default();
    first.contains(':')
}

fn counted(state: &HttpState, response: &Response, started: Instant) {
    state
        .services
        .kernel
        .metrics
        .http_response(response.status().as_u16(), started.elapsed());
}

/// Serve until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let state: Http = Arc::new(state);
    let app = MakeFront {
        routes: routes(state.clone()),
        state,
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request {
        let mut request = Request::new(axum::body::Body::empty());
        *request.method_mut() = method;
        *request.uri_mut() = path.parse().expect("a test path");
        request
    }

    /// The node's own routes always go through the router; only a path
    /// under a process id, asked with a method the router would not shape,
    /// goes straight to the proxy.
    #[test]
    fn only_process_paths_skip_the_router() {
        for own in [
            "/",
            "/login",
            "/logout",
            "/our.js",
            "/hearth.js",
            "/hearth/ws",
            "/metrics",
            isolate::ENTER_PATH,
            "/admin",
            "/admin/status",
            "/not-a-process/x:y",
        ] {
            assert!(!under_a_process(&request(Method::GET, own)), "{own}");
        }
        let app = "/notebook:notebook:sys/api/notes/a";
        assert!(under_a_process(&request(Method::GET, app)));
        assert!(under_a_process(&request(Method::POST, app)));
        assert!(under_a_process(&request(Method::GET, "//a:b:c")));
        assert!(!under_a_process(&request(Method::HEAD, app)));
        assert!(!under_a_process(&request(Method::CONNECT, app)));
    }
}
