//! A NAT test network on one machine, built from Linux network namespaces,
//! veth pairs and nftables, and real `hearth` nodes started inside it.
//! `kit bench nat` and the e2e NAT tests (`tests/tests/e2e/nat.rs`) both
//! use it.
//!
//! ```text
//!   relay 10.200.1.10 ─┐                 ┌─ 10.200.3.2 [router a] 192.168.1.1 ── alice 192.168.1.2
//!   relay2 10.200.2.10 ┼── [ internet ] ─┤     masquerade
//!   (net 10.200.1.1)   │   (forwards)    └─ 10.200.4.2 [router b] 192.168.2.1 ── bob 192.168.2.2
//!                                                masquerade (random: symmetric)
//! ```
//!
//! Each router masquerades its home network and drops what comes in on
//! its WAN side unless it belongs to a connection opened from inside, as a
//! home router does. Nothing here is connected to the machine's own
//! network: every address lives only inside these namespaces.
//!
//! [`NatNet`] deletes its namespaces when dropped, also when a test fails
//! or building the network failed half-way; namespaces left behind by a
//! process that was killed are deleted by the next [`NatNet::create`].
//! Nodes run as `ip netns exec NS hearth ...` children ([`NsNode`], killed
//! on drop); their admin API is reached from a thread that enters the
//! node's namespace (`setns`) just to open the socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The hosts of the network, each its own namespace.
pub const HOSTS: [&str; 7] = ["net", "relay", "relay2", "ra", "rb", "alice", "bob"];
/// The internet segment's own address (a node started in `net`).
pub const NET_IP: &str = "10.200.1.1";
pub const RELAY_IP: &str = "10.200.1.10";
pub const RELAY2_IP: &str = "10.200.2.10";
/// The routers' public (WAN) addresses.
pub const ROUTER_A_IP: &str = "10.200.3.2";
pub const ROUTER_B_IP: &str = "10.200.4.2";
pub const ALICE_IP: &str = "192.168.1.2";
pub const BOB_IP: &str = "192.168.2.2";
/// Namespace names start with this, then the creating process id.
const PREFIX: &str = "hn";
/// How long a node may take to boot and start its network.
const BOOT: Duration = Duration::from_secs(60);

/// How bob's router maps ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// `masquerade`: keeps the source port when it can, so a hole punch
    /// works (both homes).
    Easy,
    /// `masquerade random` on bob's router: a new random port per
    /// connection, a symmetric NAT; hole punching cannot work.
    Symmetric,
}

/// Run a program; `Err` carries its stderr.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespace network; deleted on drop.
pub struct NatNet {
    prefix: String,
    created: Vec<String>,
}

impl NatNet {
    /// Build the network. An `Err` says why it could not (not root, no
    /// `ip` or `nft`, no namespaces): the caller skips and prints it.
    pub fn create(nat: Nat) -> Result<Self, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        sweep_orphans();
        let prefix = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Self {
            prefix,
            created: Vec::new(),
        };
        // On any error the namespaces made so far go with `net`'s drop.
        net.build(nat)?;
        Ok(net)
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        run("ip", args, None)
    }

    fn link(&self, a: (&str, &str, &str), b: (&str, &str, &str)) -> Result<(), String> {
        let (na, nb) = (self.ns(a.0), self.ns(b.0));
        self.ip(&[
            "link", "add", a.1, "netns", &na, "type", "veth", "peer", "name", b.1, "netns", &nb,
        ])?;
        for (ns, dev, ip) in [(&na, a.1, a.2), (&nb, b.1, b.2)] {
            self.ip(&["-n", ns, "addr", "add", ip, "dev", dev])?;
            self.ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    fn build(&mut self, nat: Nat) -> Result<(), String> {
        for host in HOSTS {
            let ns = self.ns(host);
            self.ip(&["netns", "add", &ns])?;
            self.created.push(ns.clone());
            self.ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let links = [
            (
                ("net", "p-relay", "10.200.1.1/24"),
                ("relay", "eth0", "10.200.1.10/24"),
            ),
            (
                ("net", "p-relay2", "10.200.2.1/24"),
                ("relay2", "eth0", "10.200.2.10/24"),
            ),
            (
                ("net", "p-ra", "10.200.3.1/24"),
                ("ra", "wan", "10.200.3.2/24"),
            ),
            (
                ("net", "p-rb", "10.200.4.1/24"),
                ("rb", "wan", "10.200.4.2/24"),
            ),
            (
                ("ra", "lan", "192.168.1.1/24"),
                ("alice", "eth0", "192.168.1.2/24"),
            ),
            (
                ("rb", "lan", "192.168.2.1/24"),
                ("bob", "eth0", "192.168.2.2/24"),
            ),
        ];
        for (a, b) in links {
            self.link(a, b)?;
        }
        for (host, gw) in [
            ("relay", "10.200.1.1"),
            ("relay2", "10.200.2.1"),
            ("ra", "10.200.3.1"),
            ("rb", "10.200.4.1"),
            ("alice", "192.168.1.1"),
            ("bob", "192.168.2.1"),
        ] {
            self.ip(&["-n", &self.ns(host), "route", "add", "default", "via", gw])?;
        }
        for host in ["net", "ra", "rb"] {
            let ns = self.ns(host);
            let args = [
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ];
            run("ip", &args, None)?;
        }
        for router in ["ra", "rb"] {
            let masquerade = if router == "rb" && nat == Nat::Symmetric {
                "masquerade random"
            } else {
                "masquerade"
            };
            let rules = format!(
                "table ip hearth_nat {{
  chain nat_out {{ type nat hook postrouting priority srcnat; oifname \"wan\" {masquerade}; }}
  chain forward_wan {{ type filter hook forward priority filter; policy accept;
    iifname \"wan\" ct state established,related accept; iifname \"wan\" drop; }}
  chain input_wan {{ type filter hook input priority filter; policy accept;
    iifname \"wan\" ct state established,related accept; iifname \"wan\" drop; }}
}}
"
            );
            self.nft(router, &rules)?;
        }
        Ok(())
    }

    /// Load nftables rules into `host`'s namespace.
    pub fn nft(&self, host: &str, rules: &str) -> Result<(), String> {
        let ns = self.ns(host);
        run("ip", &["netns", "exec", &ns, "nft", "-f", "-"], Some(rules))
    }

    /// Delay every packet leaving each router's WAN side by `ms` (tc
    /// netem), so round trips across the network mean something. `Err`
    /// when the kernel has no `sch_netem` (tc: "Specified qdisc kind is
    /// unknown").
    pub fn delay(&self, ms: u32) -> Result<(), String> {
        for router in ["ra", "rb"] {
            let ns = self.ns(router);
            let delay = format!("{ms}ms");
            let args = [
                "-n", &ns, "qdisc", "replace", "dev", "wan", "root", "netem", "delay", &delay,
            ];
            run("tc", &args, None)?;
        }
        Ok(())
    }

    /// Forward TCP `port` on bob's router (its WAN address) to bob: a
    /// path through the same routers as a direct connection, for raw TCP
    /// baselines.
    pub fn forward_to_bob(&self, port: u16) -> Result<(), String> {
        let rules = format!(
            "add chain ip hearth_nat port_forward {{ type nat hook prerouting priority dstnat; }}
add rule ip hearth_nat port_forward iifname \"wan\" tcp dport {port} dnat to {BOB_IP}
insert rule ip hearth_nat forward_wan iifname \"wan\" tcp dport {port} accept
"
        );
        self.nft("rb", &rules)
    }
}

impl Drop for NatNet {
    fn drop(&mut self) {
        for ns in &self.created {
            let _ = run("ip", &["netns", "del", ns], None);
        }
    }
}

/// Delete namespaces of ours whose creating process is gone (a test run
/// killed before its drops ran).
fn sweep_orphans() {
    let Ok(dir) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('x') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", &name], None);
        }
    }
}

/// Run `f` on a thread that entered namespace `ns` (only that thread).
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)?;
        // SAFETY: setns on a namespace file we hold open; it changes the
        // network namespace of this short-lived thread only.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")))
}

/// Open a TCP connection from inside namespace `ns`.
pub fn connect_in(ns: &str, addr: &str) -> std::io::Result<TcpStream> {
    let addr = addr.to_string();
    in_ns(ns, move || {
        let stream = TcpStream::connect(addr.as_str())?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(stream)
    })
}

/// A `hearth` node running in a namespace; killed on drop.
pub struct NsNode {
    pub name: String,
    pub ns: String,
    pub home: PathBuf,
    pub port: u16,
    pub peer_id: String,
    child: Child,
}

impl NsNode {
    /// `ip netns exec NS hearth --name NAME --port 0 --home HOME
    /// --no-mdns --p2p-port 4001 EXTRA...` (`--p2p-port` in `extra`
    /// replaces 4001), waiting for its HTTP port and peer id. Its stderr
    /// goes to `HOME/hearth.log`, at `RUST_LOG=log`.
    pub fn start(
        hearth: &Path,
        ns: &str,
        home: &Path,
        name: &str,
        extra: &[String],
        log: &str,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(home).map_err(|e| format!("node home: {e}"))?;
        let port_file = home.join(hearth::api::PORT_FILE);
        let _ = std::fs::remove_file(&port_file);
        let log_file =
            std::fs::File::create(home.join("hearth.log")).map_err(|e| format!("log: {e}"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(hearth)
            .env("HOME", home)
            .env("RUST_LOG", log)
            .args(["--name", name, "--port", "0", "--no-mdns"])
            .args(if extra.iter().any(|a| a == "--p2p-port") {
                &[][..]
            } else {
                &["--p2p-port", "4001"][..]
            })
            .arg("--home")
            .arg(home)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("start hearth in {ns}: {e}"))?;
        let mut node = Self {
            name: name.into(),
            ns: ns.into(),
            home: home.into(),
            port: 0,
            peer_id: String::new(),
            child,
        };
        let t = Instant::now();
        node.port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break port;
            }
            if t.elapsed() > BOOT || node.exited() {
                return Err(format!("{name} did not boot:\n{}", node.log()));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The peer id shows once networking is up.
        node.peer_id = loop {
            let status = node.get(hearth::api::STATUS_PATH).ok();
            if let Some(id) = status.as_ref().and_then(|s| s["peer_id"].as_str()) {
                break id.to_string();
            }
            if t.elapsed() > BOOT || node.exited() {
                return Err(format!("{name}: no peer id:\n{}", node.log()));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(node)
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("hearth.log")).unwrap_or_default()
    }

    /// `/ip4/IP/tcp/4001/p2p/PEER`.
    pub fn tcp_addr(&self, ip: &str) -> String {
        format!("/ip4/{ip}/tcp/4001/p2p/{}", self.peer_id)
    }

    /// `/ip4/IP/udp/4001/quic-v1/p2p/PEER`.
    pub fn quic_addr(&self, ip: &str) -> String {
        format!("/ip4/{ip}/udp/4001/quic-v1/p2p/{}", self.peer_id)
    }

    /// One admin call; `Err` carries the status line and body of a non-2xx
    /// answer, or the I/O error.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<Vec<u8>, String> {
        let secret = std::fs::read_to_string(self.home.join(hearth::api::SECRET_FILE))
            .map_err(|e| format!("admin secret: {e}"))?;
        let mut stream = connect_in(&self.ns, &format!("127.0.0.1:{}", self.port))
            .map_err(|e| format!("connect to {}: {e}", self.name))?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n{}: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.port,
            hearth::api::SECRET_HEADER,
            secret.trim(),
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .map_err(|e| e.to_string())?;
        stream.write_all(body).map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no HTTP header in the answer")?;
        let head = String::from_utf8_lossy(&answer[..split]).to_string();
        let body = answer[split + 4..].to_vec();
        let status_ok = head
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code.starts_with('2'));
        if status_ok {
            Ok(body)
        } else {
            Err(format!(
                "{}: {}",
                head.lines().next().unwrap_or(""),
                String::from_utf8_lossy(&body)
            ))
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, String> {
        let body = self.call("GET", path, &[], "application/json")?;
        serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))
    }

    pub fn status(&self) -> Result<Value, String> {
        self.get(hearth::api::STATUS_PATH)
    }

    pub fn peers(&self) -> Result<Vec<hearth::api::PeerInfo>, String> {
        let body = self.call("GET", hearth::api::PEERS_PATH, &[], "application/json")?;
        serde_json::from_slice(&body).map_err(|e| format!("peer list: {e}"))
    }

    /// `/metrics`, one counter (0 when absent or unreadable).
    pub fn metric(&self, name: &str) -> u64 {
        let body = self
            .call("GET", "/metrics", &[], "text/plain")
            .unwrap_or_default();
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn install(&self, files: Vec<hearth::api::PackageFile>) -> Result<(), String> {
        let upload = hearth::api::PackageUpload { files };
        let body = bincode::serde::encode_to_vec(&upload, bincode::config::standard())
            .map_err(|e| e.to_string())?;
        let path = hearth::api::INSTALL_PATH;
        self.call("POST", path, &body, "application/octet-stream")
            .map(|_| ())
    }

    /// Inject a request (`kit i`): the answer body, or the typed error
    /// (`{"kind": ..., "message": ...}` as text).
    pub fn ask(&self, target: &str, body: Value, timeout: Duration) -> Result<Value, String> {
        let request = hearth::api::InjectRequest {
            target: target.into(),
            body,
            timeout_ms: Some(timeout.as_millis() as u64),
            non_block: false,
        };
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        let answer = self.call("POST", hearth::api::MESSAGE_PATH, &body, "application/json")?;
        let response: hearth::api::InjectResponse =
            serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
        Ok(response.body.unwrap_or(Value::Null))
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        self.kill();
    }
}
