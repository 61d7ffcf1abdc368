//! `kit bench nat`: reaching a node behind a NAT, on a namespace network
//! this bench builds (root, `ip`, `nft`, `tc`): a relay on a "public"
//! segment, alice and bob each behind a masquerading router whose WAN side
//! delays every packet by [`DELAY_MS`] (tc netem), so a round trip across
//! it costs about twice that.
//!
//! Figures: boot to the first answer through the relay; time from the
//! first message to a direct connection (DCUtR); round trips direct,
//! relayed (bob behind a symmetric NAT, where punching cannot work) and
//! raw TCP across the same routers in the same run; hole-punch success
//! over [`ATTEMPTS`] fresh nodes, easy NAT and symmetric NAT.
//!
//! Round trips are requests to a process bob does not run: bob's kernel
//! answers `unknown-process`, so the figure is the node-to-node path
//! (plus alice's admin API inside her namespace), no guest involved.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::table::{percentile, Row};

/// One-way delay added on each router's WAN side.
const DELAY_MS: u32 = 20;
/// Fresh nodes that each try one hole punch, per NAT kind
/// (`HEARTH_BENCH_NAT_ATTEMPTS` overrides).
const ATTEMPTS: usize = 50;
/// Round trips measured per path.
const ROUND_TRIPS: usize = 40;
const WITHIN: Duration = Duration::from_secs(60);

const HOSTS: [&str; 6] = ["net", "relay", "ra", "rb", "alice", "bob"];
const RELAY_IP: &str = "10.200.1.10";
const ROUTER_B_IP: &str = "10.200.4.2";

fn sh(program: &str, args: &[&str], stdin: Option<&str>) -> Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {program}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The namespace network; deleted on drop.
struct Net {
    prefix: String,
    /// Whether tc netem delays the routers' WAN sides (kernels without
    /// `sch_netem` cannot; the bench then runs without added delay and
    /// says so).
    delayed: bool,
}

impl Net {
    fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    fn create(symmetric: bool) -> Result<Self> {
        let mut net = Self {
            delayed: true,
            prefix: format!(
                "kb{}{}",
                std::process::id() % 100_000,
                if symmetric { "s" } else { "e" }
            ),
        };
        for host in HOSTS {
            sh("ip", &["netns", "add", &net.ns(host)], None)?;
            sh(
                "ip",
                &["-n", &net.ns(host), "link", "set", "lo", "up"],
                None,
            )?;
        }
        let links = [
            (
                "net",
                "p-relay",
                "10.200.1.1/24",
                "relay",
                "eth0",
                "10.200.1.10/24",
            ),
            ("net", "p-ra", "10.200.3.1/24", "ra", "wan", "10.200.3.2/24"),
            ("net", "p-rb", "10.200.4.1/24", "rb", "wan", "10.200.4.2/24"),
            (
                "ra",
                "lan",
                "192.168.1.1/24",
                "alice",
                "eth0",
                "192.168.1.2/24",
            ),
            (
                "rb",
                "lan",
                "192.168.2.1/24",
                "bob",
                "eth0",
                "192.168.2.2/24",
            ),
        ];
        for (a, a_if, a_ip, b, b_if, b_ip) in links {
            let (na, nb) = (net.ns(a), net.ns(b));
            sh(
                "ip",
                &[
                    "link", "add", a_if, "netns", &na, "type", "veth", "peer", "name", b_if,
                    "netns", &nb,
                ],
                None,
            )?;
            for (ns, dev, ip) in [(&na, a_if, a_ip), (&nb, b_if, b_ip)] {
                sh("ip", &["-n", ns, "addr", "add", ip, "dev", dev], None)?;
                sh("ip", &["-n", ns, "link", "set", dev, "up"], None)?;
            }
        }
        for (host, gw) in [
            ("relay", "10.200.1.1"),
            ("ra", "10.200.3.1"),
            ("rb", "10.200.4.1"),
            ("alice", "192.168.1.1"),
            ("bob", "192.168.2.1"),
        ] {
            sh(
                "ip",
                &["-n", &net.ns(host), "route", "add", "default", "via", gw],
                None,
            )?;
        }
        for host in ["net", "ra", "rb"] {
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &net.ns(host),
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ],
                None,
            )?;
        }
        for router in ["ra", "rb"] {
            let masquerade = if symmetric && router == "rb" {
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
            sh(
                "ip",
                &["netns", "exec", &net.ns(router), "nft", "-f", "-"],
                Some(&rules),
            )?;
            let delay = format!("{DELAY_MS}ms");
            let netem = [
                "-n",
                &net.ns(router),
                "qdisc",
                "replace",
                "dev",
                "wan",
                "root",
                "netem",
                "delay",
                &delay,
            ];
            if let Err(e) = sh("tc", &netem, None) {
                eprintln!("no added delay: {e}");
                net.delayed = false;
            }
        }
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for host in HOSTS {
            let _ = sh("ip", &["netns", "del", &self.ns(host)], None);
        }
    }
}

/// Run `f` on a thread that entered namespace `ns` (only that thread).
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)?;
        // SAFETY: setns with a namespace file we hold open; it affects the
        // calling thread only, which ends after `f`.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")))
}

/// A `hearth` child in a namespace; killed on drop.
struct Node {
    ns: String,
    home: PathBuf,
    port: u16,
    peer_id: String,
    child: Child,
}

impl Node {
    fn start(hearth: &Path, ns: &str, home: &Path, name: &str, extra: &[String]) -> Result<Self> {
        std::fs::create_dir_all(home)?;
        let port_file = home.join(hearth::api::PORT_FILE);
        let log = std::fs::File::create(home.join("hearth.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(hearth)
            .env("HOME", home)
            .args([
                "--name",
                name,
                "--port",
                "0",
                "--no-mdns",
                "--p2p-port",
                "4001",
                "--home",
            ])
            .arg(home)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start hearth in a namespace")?;
        let mut node = Self {
            ns: ns.into(),
            home: home.into(),
            port: 0,
            peer_id: String::new(),
            child,
        };
        let t = Instant::now();
        while node.port == 0 {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                node.port = port;
            } else if t.elapsed() > WITHIN {
                bail!("{name} did not boot");
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        while node.peer_id.is_empty() {
            if let Ok(status) = node.get(hearth::api::STATUS_PATH) {
                node.peer_id = status["peer_id"].as_str().unwrap_or_default().to_string();
            }
            if t.elapsed() > WITHIN {
                bail!("{name}: no peer id");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(node)
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<(bool, Vec<u8>)> {
        let secret = std::fs::read_to_string(self.home.join(hearth::api::SECRET_FILE))?;
        let port = self.port;
        let mut stream = in_ns(&self.ns, move || TcpStream::connect(("127.0.0.1", port)))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{}: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            hearth::api::SECRET_HEADER,
            secret.trim(),
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no HTTP header")?;
        let ok = answer.get(9) == Some(&b'2');
        Ok((ok, answer[split + 4..].to_vec()))
    }

    fn get(&self, path: &str) -> Result<Value> {
        let (_, body) = self.call("GET", path, &[])?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// One round trip to a process bob does not run: `Ok` once bob's
    /// kernel answered `unknown-process`.
    fn ask_bob(&self) -> Result<bool> {
        let request = serde_json::json!({"target": "bob.os@none:bench:sys", "body": null, "timeout_ms": 20_000});
        let (_, body) = self.call(
            "POST",
            hearth::api::MESSAGE_PATH,
            request.to_string().as_bytes(),
        )?;
        let text = String::from_utf8_lossy(&body);
        if std::env::var_os("HEARTH_BENCH_NAT_DEBUG").is_some() {
            eprintln!("ask bob: {text}");
        }
        Ok(text.contains("unknown-process"))
    }

    fn link_to(&self, name: &str) -> Option<String> {
        let peers = self.get(hearth::api::PEERS_PATH).ok()?;
        peers.as_array()?.iter().find(|p| p["name"] == name)?["connection"]
            .as_str()
            .map(String::from)
    }

    fn metric(&self, name: &str) -> u64 {
        let body = self
            .call("GET", "/metrics", &[])
            .map(|(_, b)| b)
            .unwrap_or_default();
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if t.elapsed() > WITHIN {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Median round trip in ms of `n` calls of `f`.
fn median_ms(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(percentile(&times, 50.0))
}

struct World {
    net: Net,
    dir: PathBuf,
    hearth: PathBuf,
    relay: Node,
    bob: Node,
}

/// How a home node joins: bootstrap and reserve on the relay.
fn home_args(relay: &str) -> Vec<String> {
    vec![
        "--bootstrap".into(),
        format!("/ip4/{RELAY_IP}/udp/4001/quic-v1/p2p/{relay}"),
        "--relay-via".into(),
        format!("/ip4/{RELAY_IP}/tcp/4001/p2p/{relay}"),
        "--dial-timeout-ms".into(),
        "20000".into(),
    ]
}

impl World {
    fn start(symmetric: bool, hearth: &Path, dir: &Path) -> Result<Self> {
        let net = Net::create(symmetric)?;
        let relay_args: Vec<String> = vec![
            "--relay".into(),
            "--external-addr".into(),
            format!("/ip4/{RELAY_IP}/tcp/4001"),
            "--external-addr".into(),
            format!("/ip4/{RELAY_IP}/udp/4001/quic-v1"),
        ];
        let relay = Node::start(
            hearth,
            &net.ns("relay"),
            &dir.join("relay"),
            "relay.os",
            &relay_args,
        )?;
        let args = home_args(&relay.peer_id);
        let bob = Node::start(hearth, &net.ns("bob"), &dir.join("bob"), "bob.os", &args)?;
        wait("bob's reservation", || {
            let status = bob.get(hearth::api::STATUS_PATH).ok()?;
            (status["reachability"]["relays"][0]["state"] == "reserved").then_some(())
        })?;
        Ok(Self {
            net,
            dir: dir.into(),
            hearth: hearth.into(),
            relay,
            bob,
        })
    }

    fn alice(&self, k: usize) -> Result<Node> {
        let home = self.dir.join(format!("alice{k}"));
        let args = home_args(&self.relay.peer_id);
        Node::start(
            &self.hearth,
            &self.net.ns("alice"),
            &home,
            &format!("alice{k}.os"),
            &args,
        )
    }

    /// Fresh alices, one after the other, each sending bob one request:
    /// how many of bob's hole punches succeeded.
    fn punches(&self, attempts: usize) -> Result<(u64, u64)> {
        let (mut tried, mut won) = (0, 0);
        for k in 0..attempts {
            let before = self.bob.metric("hearth_net_hole_punch_attempts_total");
            let wins = self.bob.metric("hearth_net_hole_punch_successes_total");
            let alice = self.alice(k + 1)?;
            wait("bob's answer", || alice.ask_bob().ok().filter(|ok| *ok))?;
            wait("the hole punch's outcome", || {
                (self.bob.metric("hearth_net_hole_punch_attempts_total") > before).then_some(())
            })?;
            tried += 1;
            won += self
                .bob
                .metric("hearth_net_hole_punch_successes_total")
                .saturating_sub(wins)
                .min(1);
            drop(alice);
            let _ = std::fs::remove_dir_all(self.dir.join(format!("alice{}", k + 1)));
        }
        Ok((tried, won))
    }
}

/// Port on bob's router forwarded to bob (raw TCP baseline only).
const FORWARD_PORT: u16 = 5555;

/// Raw TCP round trips from alice's namespace to bob's, through a port
/// forward on bob's router: the same routers and hops as alice to bob
/// direct.
fn raw_tcp_ms(net: &Net) -> Result<f64> {
    let rules = format!(
        "add chain ip hearth_nat port_forward {{ type nat hook prerouting priority dstnat; }}
add rule ip hearth_nat port_forward iifname \"wan\" tcp dport {FORWARD_PORT} dnat to 192.168.2.2
insert rule ip hearth_nat forward_wan iifname \"wan\" tcp dport {FORWARD_PORT} accept
"
    );
    sh(
        "ip",
        &["netns", "exec", &net.ns("rb"), "nft", "-f", "-"],
        Some(&rules),
    )?;
    let listener = in_ns(&net.ns("bob"), || {
        TcpListener::bind(("192.168.2.2", FORWARD_PORT))
    })?;
    let port = FORWARD_PORT;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        for _ in 0..ROUND_TRIPS {
            s.read_exact(&mut buf)?;
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let mut client = in_ns(&net.ns("alice"), move || {
        TcpStream::connect((ROUTER_B_IP, port))
    })?;
    client.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let ms = median_ms(ROUND_TRIPS, || {
        client.write_all(&buf)?;
        client.read_exact(&mut buf)?;
        Ok(())
    })?;
    let _ = server.join();
    Ok(ms)
}

pub fn run(json: bool) -> Result<()> {
    let attempts = std::env::var("HEARTH_BENCH_NAT_ATTEMPTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ATTEMPTS);
    let hearth = std::env::current_exe()?
        .parent()
        .map(|d| d.join("hearth"))
        .filter(|p| p.exists())
        .context("no hearth binary next to kit (cargo build --release -p hearth)")?;
    let dir = std::env::temp_dir().join(format!("hearth-bench-nat-{}", std::process::id()));
    let result = measure(&hearth, &dir, attempts);
    let _ = std::fs::remove_dir_all(&dir);
    let (rows, delayed) = result.context("the NAT bench needs root, iproute2, nftables and tc")?;
    let delay = if delayed {
        format!("{DELAY_MS} ms netem per router WAN")
    } else {
        "no added delay: this kernel has no netem".to_string()
    };
    super::table::print(
        &format!("kit bench nat (namespaces, {delay}, {attempts} punch attempts per NAT kind)"),
        &rows,
        json,
    );
    Ok(())
}

fn measure(hearth: &Path, dir: &Path, attempts: usize) -> Result<(Vec<Row>, bool)> {
    let mut rows = Vec::new();
    // Easy NAT on both sides.
    let easy = World::start(false, hearth, &dir.join("easy"))?;
    let delayed = easy.net.delayed;
    let raw = raw_tcp_ms(&easy.net)?;
    let booted = Instant::now();
    let alice = easy.alice(0)?;
    let sent = Instant::now();
    wait("the first answer through the relay", || {
        alice.ask_bob().ok().filter(|ok| *ok)
    })?;
    let first = booted.elapsed().as_secs_f64() * 1e3;
    wait("a direct connection", || {
        (alice.link_to("bob.os")? == "direct").then_some(())
    })?;
    let direct_after = sent.elapsed().as_secs_f64() * 1e3;
    let direct = median_ms(ROUND_TRIPS, || alice.ask_bob().map(|_| ()))?;
    drop(alice);
    let (tried, won) = easy.punches(attempts)?;
    let easy_rate = 100.0 * won as f64 / tried.max(1) as f64;
    drop(easy);

    // Bob behind a symmetric NAT: relayed for good.
    let sym = World::start(true, hearth, &dir.join("sym"))?;
    let alice = sym.alice(0)?;
    wait("the first answer through the relay", || {
        alice.ask_bob().ok().filter(|ok| *ok)
    })?;
    let relayed = median_ms(ROUND_TRIPS, || alice.ask_bob().map(|_| ()))?;
    let still = alice.link_to("bob.os").unwrap_or_default();
    drop(alice);
    let (s_tried, s_won) = sym.punches(attempts)?;
    let sym_rate = 100.0 * s_won as f64 / s_tried.max(1) as f64;
    drop(sym);

    rows.push(Row::new(
        "boot to first answer through the relay",
        "ms",
        first,
    ));
    rows.push(Row::new(
        "first message to direct connection (DCUtR)",
        "ms",
        direct_after,
    ));
    rows.push(
        Row::new("round trip alice->bob direct", "ms", direct).baseline("raw TCP same hops", raw),
    );
    rows.push(
        Row::new(
            format!("round trip alice->bob relayed ({still})"),
            "ms",
            relayed,
        )
        .baseline("raw TCP same hops", raw),
    );
    rows.push(Row::new(
        format!("hole punches ok, easy NAT ({won}/{tried})"),
        "%",
        easy_rate,
    ));
    rows.push(Row::new(
        format!("hole punches ok, symmetric NAT ({s_won}/{s_tried})"),
        "%",
        sym_rate,
    ));
    Ok((rows, delayed))
}
