//! The admin API between `kit` and a node: paths, headers, files and the
//! JSON/bincode bodies. Both sides use these types, so they cannot drift.
//!
//! Every admin call goes to `http://127.0.0.1:PORT/admin/...`, carries the
//! header [`SECRET_HEADER`] with the contents of `<home>/`[`SECRET_FILE`],
//! and comes from a loopback address. Calls with an `Origin` header are
//! refused, so a web page cannot reach the endpoint.

use serde::{Deserialize, Serialize};

/// Header that carries the admin secret.
pub const SECRET_HEADER: &str = "x-hearth-secret";
/// File in the node's home holding the admin secret (mode 0600).
pub const SECRET_FILE: &str = "admin.secret";
/// File in the node's home holding the HTTP port actually bound.
pub const PORT_FILE: &str = "http.port";
/// Directory, under the user's home, where each running node leaves a file
/// named after its HTTP port that holds the path of its home. `kit` uses it
/// to find the secret of the node on `--port`.
pub const RUN_DIR: &str = ".hearth/run";

/// `POST /admin/install`, body: bincode of [`PackageUpload`].
pub const INSTALL_PATH: &str = "/admin/install";
/// `POST /admin/uninstall`, body: JSON [`UninstallRequest`]; answers JSON
/// [`UninstallResponse`].
pub const UNINSTALL_PATH: &str = "/admin/uninstall";
/// `POST /admin/message`, body: JSON [`InjectRequest`].
pub const MESSAGE_PATH: &str = "/admin/message";
/// `GET /admin/processes`: JSON `Vec<`[`ProcessInfo`]`>`.
pub const PROCESSES_PATH: &str = "/admin/processes";
/// `GET /admin/status`: JSON [`NodeStatus`].
pub const STATUS_PATH: &str = "/admin/status";
/// WebSocket: watch live rooms (`kit watch-room`); frames as on `/hearth/ws`.
pub const WATCH_PATH: &str = "/admin/watch";

/// A package as uploaded by `kit s`: every file of the package directory
/// that the node needs (`metadata.json` and everything under `pkg/`), with
/// paths relative to the package root, using `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageUpload {
    pub files: Vec<PackageFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UninstallRequest {
    /// `package:publisher`.
    pub package: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UninstallResponse {
    /// `package:publisher`.
    pub package: String,
    /// Process ids stopped, `process:package:publisher`.
    pub processes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallResponse {
    /// `package:publisher`.
    pub package: String,
    pub version: String,
    /// Process ids started, `process:package:publisher`.
    pub processes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InjectRequest {
    /// `process:package:publisher` or `node@process:package:publisher`.
    pub target: String,
    /// Sent as the request body, serialised as JSON.
    pub body: serde_json::Value,
    /// How long to wait for the response; `None` means the node's default.
    pub timeout_ms: Option<u64>,
    /// Fire-and-forget: return once the message is accepted.
    #[serde(default)]
    pub non_block: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InjectResponse {
    /// Correlation id of the injected request.
    pub id: u64,
    /// The response body: JSON when it parses as JSON, otherwise a string
    /// (lossy UTF-8). `None` for `non_block`.
    pub body: Option<serde_json::Value>,
}

/// Body of every admin error (any non-2xx status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable kebab-case kind, such as `unknown-process`, `timeout`,
    /// `capability-missing`, `unauthorized`, `bad-request`.
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub id: String,
    pub public: bool,
    pub networking: bool,
}

/// `GET /admin/ps`: JSON `Vec<`[`ProcessStatus`]`>`, for `kit ps`.
pub const PS_PATH: &str = "/admin/ps";

/// One registered endpoint (a WASM process or a native service) as `kit ps`
/// shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessStatus {
    pub id: String,
    /// `starting`, `running`, `restarting` (crashed, in its backoff) or
    /// `crashed` (down for good; a few are listed after they left the
    /// process table). Native services are always `running`.
    pub state: String,
    /// Requests waiting in its mailbox.
    pub queued_requests: usize,
    /// Bytes waiting in its mailbox (payloads and a fixed cost per message).
    pub queued_bytes: usize,
    pub public: bool,
    pub networking: bool,
    /// Restarts after crashes since it was installed.
    #[serde(default)]
    pub restarts: u64,
    /// Events handed to the guest (messages, failures, timeouts) since it
    /// was installed; `None` for native services.
    #[serde(default)]
    pub handled: Option<u64>,
    /// Bytes of the guest's linear memory (the current incarnation's wasm
    /// memories, as granted; not the node's compiled code or host-side
    /// buffers); `None` for native services.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// `GET /admin/trace?process=ID&sample=N`: the messages the node routes,
/// as they come, one JSON [`TraceLine`] a line (metadata only, never
/// bodies). Without `process`, every message; `sample` N sends one in N.
pub const TRACE_PATH: &str = "/admin/trace";

/// One line of [`TRACE_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceLine {
    Message {
        /// Microseconds since the Unix epoch.
        at_us: u64,
        id: u64,
        /// `node@process`.
        source: String,
        target: String,
        /// Payload bytes (body, metadata, blob; an error's detail).
        bytes: usize,
        /// `request`, `response`, `fire-and-forget` or `error`.
        kind: String,
        /// For an error: its kind (`timeout`, `process-exited`, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Events not sent to this watcher so far (over its rate or its
    /// buffer); also sent every few seconds as a heartbeat.
    Dropped { total: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub version: String,
    pub http_port: u16,
    pub processes: usize,
    /// Our libp2p peer id; `None` when networking is off.
    pub peer_id: Option<String>,
    /// A TCP multiaddr other nodes can `--bootstrap` from, once listening.
    pub bootstrap: Option<String>,
    /// Whether peers can dial us (AutoNAT), and our relays.
    #[serde(default)]
    pub reachability: Option<Reachability>,
}

/// What AutoNAT found out about us, and where we are reserved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reachability {
    /// `public` (a peer dialled one of our addresses back), `private`
    /// (dial-backs failed and none succeeded) or `unknown`.
    pub status: String,
    /// Addresses a peer confirmed by dialling back (relay circuits not
    /// included).
    pub confirmed: Vec<String>,
    /// Our circuit addresses on relays (published in our name record).
    pub circuits: Vec<String>,
    /// The relays of `--relay-via` and where each stands
    /// (`reserved`, `reserving`, `retrying`, `standby`).
    pub relays: Vec<RelayInfo>,
    /// Reservations we held and lost since boot.
    pub relays_lost: u64,
    /// Whether this node serves as a relay (`--relay`).
    pub serving_relay: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayInfo {
    pub addr: String,
    pub state: String,
}

/// `GET /admin/peers`: JSON `Vec<PeerInfo>`.
pub const PEERS_PATH: &str = "/admin/peers";

/// A connected peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The node name bound to the peer's key, once it said hello.
    pub name: Option<String>,
    pub peer_id: String,
    pub addrs: Vec<String>,
    /// Last ping round trip.
    pub rtt_ms: Option<f64>,
    /// `direct` or `relayed` (only circuits through a relay are open).
    #[serde(default)]
    pub connection: Option<String>,
    /// `tcp` or `quic`; for a relayed peer, the transport to the relay.
    #[serde(default)]
    pub transport: Option<String>,
}

/// `GET /admin/disk`: JSON [`DiskUsage`].
pub const DISK_PATH: &str = "/admin/disk";

/// Disk use of a node, per package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Size of the state store's files (`<home>/state.sled`), all
    /// packages together (sled keeps some slack beyond the live data).
    pub store_bytes: u64,
    pub packages: Vec<PackageDisk>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageDisk {
    /// `package:publisher`.
    pub package: String,
    /// Installed files under `<home>/packages`.
    pub package_bytes: u64,
    /// Per-process state (live keys and values in the store).
    pub state_bytes: u64,
    /// Key-value databases (live keys and values in the store).
    pub kv_bytes: u64,
    /// The package's drive under `<home>/vfs`.
    pub vfs_bytes: u64,
}
