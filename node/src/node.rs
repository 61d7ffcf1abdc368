//! Booting and stopping a node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::{PORT_FILE, RUN_DIR, SECRET_FILE};
use crate::config::NodeConfig;
use crate::http::{self, HttpState};
use crate::native::NativeEndpoint;
use crate::package;
use crate::rpc;
use crate::runtime::{Runtime, RuntimeError};
use crate::services::Services;
use crate::state::{StateError, StateStore};
use crate::util::{random_token, write_private};
use crate::{kv, timer, vfs};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("home directory {path}: {source}")]
    Home {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("bad node name {0:?}: names are [a-z0-9-.]")]
    Name(String),
    #[error("boot: {0}")]
    Boot(String),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
}

/// A running node. Dropping it without [`Node::shutdown`] leaves its tasks
/// running until the runtime ends.
pub struct Node {
    services: Arc<Services>,
    injector: Arc<NativeEndpoint>,
    http_addr: SocketAddr,
    home: PathBuf,
    run_file: Option<PathBuf>,
    shutdown_tx: watch::Sender<bool>,
    http_task: JoinHandle<std::io::Result<()>>,
    net: Arc<crate::net::Net>,
}

impl Node {
    /// Boot: open the home, start the runtime and HTTP server, and start
    /// every installed package.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        if !crate::types::valid_name(&config.name, true) {
            return Err(NodeError::Name(config.name.clone()));
        }
        let home = config.home.clone();
        let home_err = |source| NodeError::Home {
            path: home.clone(),
            source,
        };
        std::fs::create_dir_all(home.join("packages")).map_err(home_err)?;
        let secret = load_or_create_secret(&home).map_err(home_err)?;
        let state = StateStore::open(&home)?;
        let runtime = Runtime::new(Some(home.join(crate::runtime::COMPILED_DIR)))?;
        let services = Services::new(&config, runtime, state);
        let injector = rpc::start(&services).map_err(|e| NodeError::Boot(e.to_string()))?;
        let boot_err = |e: crate::kernel::AlreadyRunning| NodeError::Boot(e.to_string());
        kv::start(&services).map_err(boot_err)?;
        vfs::start(&services, home.join(vfs::VFS_DIR)).map_err(boot_err)?;
        timer::start(&services).map_err(boot_err)?;
        crate::rooms::start(&services).map_err(boot_err)?;
        let web = http::Web::start(&services, &config.http, &home)
            .map_err(|e| NodeError::Boot(e.to_string()))?;

        let addr = SocketAddr::new(config.http_bind, config.http_port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| NodeError::Listen { addr, source })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| NodeError::Listen { addr, source })?;
        std::fs::write(home.join(PORT_FILE), http_addr.port().to_string()).map_err(home_err)?;
        let run_file = config
            .register_run_file
            .then(|| register_run_file(&home, http_addr.port()))
            .flatten();

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let net_slot = Arc::new(std::sync::OnceLock::new());
        let state = HttpState {
            services: services.clone(),
            injector: injector.clone(),
            secret: secret.into(),
            port: http_addr.port(),
            web,
            net: net_slot.clone(),
        };
        let http_task = tokio::spawn(http::serve(listener, state, shutdown_rx));

        // Every process is registered before any instantiates.
        let hold = services.runtime.hold_boots();
        let started = package::start_all_installed(&services).await;
        let children = package::restore_children(&services).await;
        drop(hold);
        // Join the network once every local process is back, so a peer
        // never sees `unknown-process` for one that is still starting.
        let net = crate::net::Net::start(&config.net, &home, &services)?;
        services.kernel.set_remote(net.clone());
        let _ = net_slot.set(net.clone());
        info!(
            name = %config.name,
            http = %http_addr,
            packages = started.len(),
            children,
            "node started"
        );
        Ok(Node {
            services,
            injector,
            http_addr,
            home,
            run_file,
            shutdown_tx,
            http_task,
            net,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn name(&self) -> &str {
        self.services.kernel.our()
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// The peer-to-peer network.
    pub fn net(&self) -> &Arc<crate::net::Net> {
        &self.net
    }

    /// Sends requests on behalf of an administrator, as `kit i` does.
    pub fn injector(&self) -> &Arc<NativeEndpoint> {
        &self.injector
    }

    /// Stop serving, stop every process, and remove the run file.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        // Processes first, so remote askers hear `process-exited` for what
        // was in flight; then peers see the connections close.
        self.services.stop_where(|_| true).await;
        self.net.shutdown().await;
        match self.http_task.await {
            Ok(Err(e)) => warn!("http server ended with an error: {e}"),
            Err(e) => warn!("http server task failed: {e}"),
            Ok(Ok(())) => {}
        }
        if let Some(run_file) = self.run_file {
            let _ = std::fs::remove_file(run_file);
        }
        close_store(self.services, self.injector).await;
        info!("node stopped");
    }
}

/// Unregister the native endpoints so their tasks end, then wait (a
/// bounded while) for the last handle on the services: dropping it closes
/// the state store (final flush, file lock released), so the same home can
/// be opened again at once.
async fn close_store(services: Arc<Services>, injector: Arc<NativeEndpoint>) {
    drop(injector);
    for (id, _) in services.kernel.processes() {
        services.kernel.unregister(&id);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while Arc::strong_count(&services) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    if Arc::strong_count(&services) > 1 {
        warn!("state store still referenced at shutdown; it closes when the last task ends");
    }
    if let Err(e) = services.state.durable().await {
        warn!("final state flush failed: {e}");
    }
}

/// The admin secret: 32 random bytes, hex, in `<home>/admin.secret` with
/// owner-only permissions. Never logged.
fn load_or_create_secret(home: &Path) -> std::io::Result<String> {
    let path = home.join(SECRET_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    let secret = random_token()?;
    write_private(&path, secret.as_bytes())?;
    Ok(secret)
}

/// `$HOME/.hearth/run/<port>` holds the absolute path of this node's home.
fn register_run_file(home: &Path, port: u16) -> Option<PathBuf> {
    let user_home = std::env::var_os("HOME")?;
    let dir = Path::new(&user_home).join(RUN_DIR);
    let home = std::fs::canonicalize(home).ok()?;
    let file = dir.join(port.to_string());
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&file, home.to_string_lossy().as_bytes()));
    match written {
        Ok(()) => Some(file),
        Err(e) => {
            warn!("cannot write {}: {e}; kit will need --home", file.display());
            None
        }
    }
}
