//! Test harness: real nodes booted in this process on port 0 with
//! throw-away homes, real components built from the workspace.

#![allow(dead_code)]

pub mod mallory;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use hearth::api::PackageFile;
use hearth::types::{Address, SendError};
use hearth::{Node, NodeConfig};
use serde_json::{json, Value};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Every guest crate the tests install.
const GUESTS: [&str; 9] = [
    "echo",
    "probe",
    "chat",
    "webprobe",
    "notebook",
    "ticker",
    "compat-v010",
    "compat-v011",
    "compat-v012",
];

/// Build the guest components once per test binary and return the
/// directory holding their `.wasm` files.
pub fn guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let mut build = Command::new(cargo());
        build
            .current_dir(&root)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .args(kit::build_profile::cargo_args())
            .args(GUESTS.iter().flat_map(|g| ["-p", g]));
        run_build(build, "the guest components");
        root.join("target/wasm32-wasip2/release")
    })
}

/// The release binaries `hearth` and `kit`, built once.
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let mut build = Command::new(cargo());
        build
            .current_dir(&root)
            .args(["build", "--release", "-p", "hearth", "-p", "kit"]);
        run_build(build, "hearth and kit");
        root.join("target/release")
    })
}

/// Run a build the tests need. Its output is kept, not streamed: a build
/// running beside the tests would otherwise print into whichever test's
/// output is on screen (a compiler crash then reads like that test's).
/// On failure the panic carries the end of the build's output.
fn run_build(mut build: Command, what: &str) {
    const TAIL: usize = 6000;
    let out = build
        .output()
        .unwrap_or_else(|e| panic!("run cargo to build {what}: {e}"));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let start = stderr.floor_char_boundary(stderr.len().saturating_sub(TAIL));
        panic!(
            "building {what} failed ({}):\n{}",
            out.status,
            &stderr[start..]
        );
    }
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hearth-test-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Limits small enough that crash tests run fast.
pub fn test_config(home: &Path, name: &str) -> NodeConfig {
    let mut config = NodeConfig::new(home, name);
    config.http_port = 0;
    config.register_run_file = false;
    config.limits.max_call_time = Duration::from_millis(300);
    config.limits.max_memory_bytes = 64 * 1024 * 1024;
    config.limits.max_message_bytes = 1024 * 1024;
    config.restart.base = Duration::from_millis(100);
    // Peers on loopback, found through explicit bootstrap addresses.
    config.net.listen_ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    config.net.mdns = false;
    config.net.dial_timeout = Duration::from_secs(3);
    config
}

pub struct TestNode {
    pub node: Node,
    pub home: TempDir,
}

impl TestNode {
    pub async fn start(name: &str) -> Self {
        let home = TempDir::new(name);
        Self::start_with(test_config(home.path(), name), home).await
    }

    pub async fn start_with(config: NodeConfig, home: TempDir) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let node = Node::start(config).await.expect("node starts");
        Self { node, home }
    }

    /// Install the probe package with the given manifest entries.
    pub async fn install_probe(&self, manifest: Value) -> Vec<String> {
        self.install(probe_package(manifest)).await
    }

    pub async fn install(&self, files: Vec<PackageFile>) -> Vec<String> {
        hearth::package::install(self.node.services(), files)
            .await
            .expect("package installs")
            .processes
    }

    /// Send `body` to `target` as an admin would and await the JSON reply.
    pub async fn ask(&self, target: &str, body: Value) -> Result<Value, SendError> {
        self.ask_within(target, body, Duration::from_secs(10)).await
    }

    /// A probe's `received` report, asked again every 20 ms until `done`
    /// holds for it or `within` has passed; the last report either way.
    pub async fn received_until(
        &self,
        probe: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let got = self
                .ask(probe, json!({"received": null}))
                .await
                .expect("the probe reports what it received");
            if done(&got) || std::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn ask_within(
        &self,
        target: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, SendError> {
        let target = Address::parse_with_default(target, self.node.name()).expect("valid address");
        let bytes = serde_json::to_vec(&body).expect("json");
        let (_, km) = self
            .node
            .injector()
            .ask(target, bytes, None, timeout)
            .await?;
        match km.message {
            hearth::types::Message::Response(r) => {
                Ok(serde_json::from_slice(&r.body).expect("json reply"))
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }

    pub async fn tell(&self, target: &str, body: Value) -> Result<(), SendError> {
        let target = Address::parse_with_default(target, self.node.name()).expect("valid address");
        let bytes = serde_json::to_vec(&body).expect("json");
        self.node.injector().tell(target, bytes, None).map(|_| ())
    }

    /// Our TCP multiaddr with `/p2p/<peer id>`, once listening.
    pub async fn p2p_addr(&self) -> String {
        let net = self.node.net();
        let t = std::time::Instant::now();
        loop {
            if let Some(addr) = net.bootstrap_addr() {
                return addr;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "node never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) -> TempDir {
        self.node.shutdown().await;
        self.home
    }
}

/// A manifest entry for a probe process.
/// A node that dials `bootstrap` at start, with the probe package of
/// `manifest` installed.
pub async fn peer_node(name: &str, bootstrap: &[&str], manifest: Value) -> TestNode {
    let home = TempDir::new(name);
    let mut config = test_config(home.path(), name);
    config.net.bootstrap = bootstrap.iter().map(|s| s.to_string()).collect();
    let n = TestNode::start_with(config, home).await;
    n.install_probe(manifest).await;
    n
}

/// Ask `target` through `n`'s net probe (context `"ctx"`), retrying for up
/// to `retry_for` while the peer is `offline`: connections between nodes
/// come up asynchronously.
pub async fn ask_via_net_probe(
    n: &TestNode,
    target: &str,
    body: Value,
    timeout_ms: u64,
    retry_for: Duration,
) -> Value {
    let t = std::time::Instant::now();
    loop {
        let ask = json!({"ask": {"target": target, "body": body, "timeout_ms": timeout_ms, "context": "ctx"}});
        let reply = n.ask("net:probe:test", ask).await.expect("probe answers");
        if reply["err"]["kind"] != "offline" || t.elapsed() > retry_for {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn probe(name: &str, public: bool, on_exit: Value, caps: &[&str]) -> Value {
    json!({
        "process_name": name,
        "process_wasm_path": "/probe.wasm",
        "on_exit": on_exit,
        "request_networking": false,
        "request_capabilities": caps,
        "grant_capabilities": [],
        "public": public,
    })
}

/// A public probe that may talk to other nodes.
pub fn net_probe(name: &str) -> Value {
    let mut entry = probe(name, true, json!("None"), &[]);
    entry["request_networking"] = json!(true);
    entry
}

pub fn probe_package(manifest: Value) -> Vec<PackageFile> {
    let metadata = json!({
        "name": "probe",
        "description": "test probe",
        "properties": {"package_name": "probe", "publisher": "test", "current_version": "0.1.0"}
    });
    vec![
        file(
            "metadata.json",
            serde_json::to_vec(&metadata).expect("json"),
        ),
        file(
            "pkg/manifest.json",
            serde_json::to_vec(&manifest).expect("json"),
        ),
        file(
            "pkg/probe.wasm",
            std::fs::read(guests().join("probe.wasm")).expect("probe.wasm built"),
        ),
    ]
}

/// The package in `dir` (relative to the workspace) with its built
/// component `wasm`: what `kit s` uploads for a package without a UI.
pub fn built_package(dir: &str, wasm: &str) -> Vec<PackageFile> {
    built_package_of(dir, &[wasm])
}

/// The package in `dir` with each of the built `wasms`.
pub fn built_package_of(dir: &str, wasms: &[&str]) -> Vec<PackageFile> {
    let root = workspace_root().join(dir);
    let read = |path: std::path::PathBuf| {
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut files = vec![
        file("metadata.json", read(root.join("metadata.json"))),
        file("pkg/manifest.json", read(root.join("pkg/manifest.json"))),
    ];
    for wasm in wasms {
        files.push(file(&format!("pkg/{wasm}"), read(guests().join(wasm))));
    }
    files
}

pub fn echo_package() -> Vec<PackageFile> {
    built_package("apps/echo", "echo.wasm")
}

pub fn file(path: &str, bytes: Vec<u8>) -> PackageFile {
    PackageFile {
        path: path.into(),
        bytes,
    }
}

/// The standard test package: `alpha` (public, may message beta),
/// `beta` (private), `guarded` (private, nobody may message it),
/// `mortal` (public, stays down), `phoenix` (public, restarts).
pub fn standard_manifest() -> Value {
    json!([
        probe("alpha", true, json!("None"), &["beta:probe:test"]),
        probe("beta", false, json!("None"), &[]),
        probe("guarded", false, json!("None"), &[]),
        probe("mortal", true, json!("None"), &[]),
        probe("phoenix", true, json!("Restart"), &[]),
    ])
}

/// A real `hearth` binary running as a child process, its log in
/// `<home>/hearth.log`. Dropping it kills it (SIGKILL).
pub struct HearthProcess {
    pub child: std::process::Child,
    pub port: u16,
}

impl HearthProcess {
    /// Start `hearth --name NAME --port 0 --home HOME EXTRA...` with `HOME`
    /// set to `user_home`, and wait until it has written its HTTP port.
    pub fn start(home: &Path, user_home: &Path, name: &str, extra: &[&str]) -> Self {
        let port_file = home.join(hearth::api::PORT_FILE);
        let _ = std::fs::remove_file(&port_file);
        std::fs::create_dir_all(home).expect("node home");
        let log_path = home.join("hearth.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(binaries().join("hearth"))
            .env("HOME", user_home)
            .args(["--name", name, "--port", "0", "--home"])
            .arg(home)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hearth");
        let t = std::time::Instant::now();
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break port;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{name} did not boot:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Self { child, port }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HearthProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The JSON report a browser script (`tests/ui/*.mjs`) printed: each check
/// is printed, then every `expected` check must have run and all passed
/// (and the script exited well). `context` (stderr, node logs) is added to
/// any failure. Returns the report for checks of its own.
pub fn browser_report(printed: &str, exited_well: bool, expected: &[&str], context: &str) -> Value {
    let report: Value = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("browser script printed no JSON ({e}):\n{printed}\n{context}"));
    let checks = report["checks"].as_array().expect("checks");
    for c in checks {
        eprintln!(
            "{} {} {}",
            if c["ok"] == true { "ok  " } else { "FAIL" },
            c["name"],
            c["detail"]
        );
    }
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in expected {
        assert!(
            names.contains(expected),
            "check {expected:?} did not run:\n{printed}\n{context}"
        );
    }
    assert!(
        exited_well && report["ok"] == true,
        "browser checks failed:\n{printed}\n{context}"
    );
    report
}

/// A loopback port free right now for TCP and UDP (a node listens on both:
/// TCP, and QUIC over UDP), for a node that must keep its port across
/// restarts. It is taken outside the kernel's ephemeral range, so no socket
/// bound to port 0 (every other node and client in the suite) can be handed
/// it before the node binds it. A counter keeps this process's picks apart,
/// and a hash of the pid spreads concurrent test runs over the range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first = picked_ports_start();
    let spread = (std::process::id().wrapping_mul(2_654_435_761) >> 16) as u16 % PICKED_PORTS;
    for _ in 0..PICKED_PORTS {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = first + (spread.wrapping_add(n) % PICKED_PORTS);
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if tcp.is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP outside the ephemeral range")
}

/// How many ports outside the ephemeral range [`free_port`] picks from.
const PICKED_PORTS: u16 = 8192;

/// The first of [`PICKED_PORTS`] ports just below the kernel's ephemeral
/// range, or just above it when there is no room below.
fn picked_ports_start() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| {
            let mut ends = r.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((ends.next()??, ends.next()??))
        })
        .unwrap_or((32768, 60999));
    match range {
        (low, _) if low >= PICKED_PORTS + 1024 => low - PICKED_PORTS,
        (_, high) if high <= u16::MAX - PICKED_PORTS => high + 1,
        range => panic!("the ephemeral range {range:?} leaves no room for fixed ports"),
    }
}
