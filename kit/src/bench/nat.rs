//! `kit bench nat`: reaching a node behind a NAT, on the namespace network
//! of `kit::netns` (root, `ip`, `nft`; `tc` with `sch_netem` for the
//! delay): a relay on a "public" segment, alice and bob each behind a
//! masquerading router. Where the kernel has netem, each router's WAN
//! side delays every packet by [`DELAY_MS`], so a round trip across it
//! costs about twice that; where it has not, the bench runs without added
//! delay and its title says so.
//!
//! Figures: boot to bob's relay reservation; from it to a scout's first
//! answer from bob (bob's record with his circuit reached the DHT); boot
//! to the first answer from bob (through the relay: a fresh alice,
//! started after the scout, resolves `bob.os` in the DHT and dials its
//! circuit address); from that message to a direct connection (DCUtR); round trips direct, relayed (bob behind a
//! symmetric NAT, where punching cannot work) and raw TCP across the same
//! routers in the same run; hole-punch success over [`ATTEMPTS`] fresh
//! nodes per NAT kind, [`PARALLEL`] at a time.
//!
//! Round trips are requests to a process bob does not run: bob's kernel
//! answers `unknown-process`, so the figure is the node-to-node path
//! (plus alice's admin API inside her namespace), no guest involved.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use kit::netns::{in_ns, Nat, NatNet, NsNode, BOB_IP, RELAY_IP, ROUTER_B_IP};
use serde_json::Value;

use super::table::{percentile, Row};

/// One-way delay added on each router's WAN side (with netem).
const DELAY_MS: u32 = 20;
/// Fresh nodes that each try one hole punch, per NAT kind
/// (`HEARTH_BENCH_NAT_ATTEMPTS` overrides).
const ATTEMPTS: usize = 50;
/// Punching nodes running at once (each on its own port).
const PARALLEL: usize = 5;
/// Round trips measured per path.
const ROUND_TRIPS: usize = 40;
const WITHIN: Duration = Duration::from_secs(60);
/// Port on bob's router forwarded to bob (raw TCP baseline only).
const FORWARD_PORT: u16 = 5555;
/// Node log level; `HEARTH_BENCH_NAT_DEBUG` also keeps the nodes' homes
/// (and logs) after the run.
const LOG: &str = "info,hearth::net=debug";

fn start(
    net: &NatNet,
    hearth: &Path,
    host: &str,
    home: &Path,
    name: &str,
    extra: &[String],
) -> Result<NsNode> {
    NsNode::start(hearth, &net.ns(host), home, name, extra, LOG).map_err(|e| anyhow!(e))
}

/// One round trip to a process bob does not run: `true` once bob's
/// kernel answered `unknown-process` (any other outcome is `false`).
fn ask_bob(alice: &NsNode) -> bool {
    let answer = alice.ask(
        "bob.os@none:bench:sys",
        Value::Null,
        Duration::from_secs(20),
    );
    if std::env::var_os("HEARTH_BENCH_NAT_DEBUG").is_some() {
        eprintln!("ask bob: {answer:?}");
    }
    matches!(answer, Err(e) if e.contains("unknown-process"))
}

fn link_to(node: &NsNode, name: &str) -> Option<String> {
    let peers = node.peers().ok()?;
    peers
        .into_iter()
        .find(|p| p.name.as_deref() == Some(name))?
        .connection
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct World {
    net: NatNet,
    dir: PathBuf,
    hearth: PathBuf,
    relay: NsNode,
    bob: NsNode,
    /// bob's boot to his reservation on the relay.
    reserved_after: Duration,
    /// bob's reservation to a scout's first answer from him (a fresh
    /// node booted then, racing his publish of the record).
    scouted_after: Duration,
    /// Why there is no added delay, if there is none.
    no_delay: Option<String>,
}

impl World {
    fn start(nat: Nat, hearth: &Path, dir: &Path) -> Result<Self> {
        let net = NatNet::create(nat).map_err(|e| anyhow!(e))?;
        let no_delay = net.delay(DELAY_MS).err();
        let relay_args: Vec<String> = vec![
            "--relay".into(),
            "--external-addr".into(),
            format!("/ip4/{RELAY_IP}/tcp/4001"),
            "--external-addr".into(),
            format!("/ip4/{RELAY_IP}/udp/4001/quic-v1"),
        ];
        let relay = start(
            &net,
            hearth,
            "relay",
            &dir.join("relay"),
            "relay.os",
            &relay_args,
        )?;
        let mut args = home_args(&relay.peer_id);
        args.extend(["--relay-via".into(), relay.tcp_addr(RELAY_IP)]);
        let booted = Instant::now();
        let bob = start(&net, hearth, "bob", &dir.join("bob"), "bob.os", &args)?;
        wait("bob's reservation", || {
            let status = bob.status().ok()?;
            (status["reachability"]["relays"][0]["state"] == "reserved").then_some(())
        })?;
        let reserved_after = booted.elapsed();
        // A scout on the public segment asks bob until he answers: his
        // record with the circuit is in the DHT then. The fresh alice
        // measured next does not race his publish (a record from before
        // the reservation names only his private addresses, and a QUIC
        // dial there waits out its 5 s handshake timeout).
        let scout = start(
            &net,
            hearth,
            "net",
            &dir.join("scout"),
            "scout.os",
            &home_args(&relay.peer_id),
        )?;
        wait("a scout's answer from bob", || {
            ask_bob(&scout).then_some(())
        })?;
        let scouted_after = booted.elapsed() - reserved_after;
        drop(scout);
        Ok(Self {
            net,
            dir: dir.into(),
            hearth: hearth.into(),
            relay,
            bob,
            reserved_after,
            scouted_after,
            no_delay,
        })
    }

    /// A fresh alice (`k` names her and her port), joining through the
    /// relay. She does not reserve: she only dials out.
    fn alice(&self, k: usize) -> Result<NsNode> {
        let home = self.dir.join(format!("alice{k}"));
        let _ = std::fs::remove_dir_all(&home);
        let mut args = home_args(&self.relay.peer_id);
        args.extend(["--p2p-port".into(), (4100 + k).to_string()]);
        start(
            &self.net,
            &self.hearth,
            "alice",
            &home,
            &format!("alice{k}.os"),
            &args,
        )
    }

    /// A fresh alice that got one answer from bob (the hole punch starts
    /// on that relayed connection).
    fn answered_alice(&self, k: usize) -> Result<NsNode> {
        let alice = self.alice(k)?;
        wait("bob's answer", || ask_bob(&alice).then_some(()))?;
        Ok(alice)
    }

    /// `attempts` fresh alices, [`PARALLEL`] at a time, each reaching bob
    /// through the relay: how many of them ended up direct. A batch is over
    /// once bob (who starts each hole punch) counted an outcome for each
    /// (libp2p reports a failed punch on bob's side only).
    fn punches(&self, attempts: usize) -> Result<(usize, usize)> {
        let mut won = 0;
        let mut k = 1;
        while k <= attempts {
            let batch: Vec<usize> = (k..(k + PARALLEL).min(attempts + 1)).collect();
            k += batch.len();
            let before = self.bob.metric("hearth_net_hole_punch_attempts_total");
            let alices: Vec<Result<NsNode>> = std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|&k| s.spawn(move || self.answered_alice(k)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow!("an alice thread panicked")))
                    })
                    .collect()
            });
            let alices = alices.into_iter().collect::<Result<Vec<_>>>()?;
            wait("bob's hole punch outcomes", || {
                let done = self.bob.metric("hearth_net_hole_punch_attempts_total") - before;
                (done as usize >= alices.len()).then_some(())
            })?;
            for alice in &alices {
                let direct = alice.metric("hearth_net_hole_punch_successes_total") > 0
                    || link_to(alice, "bob.os").as_deref() == Some("direct");
                won += usize::from(direct);
            }
            drop(alices);
            for k in batch {
                let _ = std::fs::remove_dir_all(self.dir.join(format!("alice{k}")));
            }
        }
        Ok((attempts, won))
    }
}

/// How a home node joins: through the relay's QUIC address.
fn home_args(relay: &str) -> Vec<String> {
    vec![
        "--bootstrap".into(),
        format!("/ip4/{RELAY_IP}/udp/4001/quic-v1/p2p/{relay}"),
        "--dial-timeout-ms".into(),
        "20000".into(),
    ]
}

/// Raw TCP round trips from alice's namespace to bob's, through a port
/// forward on bob's router: the same routers and hops as alice to bob
/// direct.
fn raw_tcp_ms(net: &NatNet) -> Result<f64> {
    net.forward_to_bob(FORWARD_PORT).map_err(|e| anyhow!(e))?;
    let listener = in_ns(&net.ns("bob"), || TcpListener::bind((BOB_IP, FORWARD_PORT)))?;
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
    let mut client = in_ns(&net.ns("alice"), || {
        TcpStream::connect((ROUTER_B_IP, FORWARD_PORT))
    })?;
    client.set_nodelay(true)?;
    client.set_read_timeout(Some(WITHIN))?;
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
    let started = Instant::now();
    let result = measure(&hearth, &dir, attempts);
    if std::env::var_os("HEARTH_BENCH_NAT_DEBUG").is_some() {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (rows, no_delay) =
        result.context("the NAT bench needs root, iproute2 and nftables (tc netem optional)")?;
    let delay = match no_delay {
        None => format!("{DELAY_MS} ms netem delay per router WAN"),
        Some(why) => format!("NO added delay, the kernel lacks sch_netem ({why})"),
    };
    super::table::print(
        &format!(
            "kit bench nat (namespaces, {delay}; {attempts} punch attempts per NAT kind; {:.0} s)",
            started.elapsed().as_secs_f64()
        ),
        &rows,
        json,
    );
    Ok(())
}

fn measure(hearth: &Path, dir: &Path, attempts: usize) -> Result<(Vec<Row>, Option<String>)> {
    // Easy NAT on both sides.
    let easy = World::start(Nat::Easy, hearth, &dir.join("easy"))?;
    let no_delay = easy.no_delay.clone();
    let raw = raw_tcp_ms(&easy.net)?;
    let booted = Instant::now();
    let alice = easy.alice(0)?;
    // From the send of the message that got through (not of earlier
    // tries that failed `offline`).
    let sent = wait("the first answer from bob", || {
        let sent = Instant::now();
        ask_bob(&alice).then_some(sent)
    })?;
    let first = booted.elapsed();
    if alice.metric("hearth_net_relayed_bytes_total") == 0 {
        bail!("alice's first message to bob did not go through the relay");
    }
    wait("a direct connection", || {
        (link_to(&alice, "bob.os")? == "direct").then_some(())
    })?;
    let to_direct = sent.elapsed();
    let direct = median_ms(ROUND_TRIPS, || {
        ask_bob(&alice).then_some(()).context("bob did not answer")
    })?;
    drop(alice);
    let (tried, won) = easy.punches(attempts)?;
    let reserved = easy.reserved_after;
    let scouted = easy.scouted_after;
    drop(easy);

    // Bob behind a symmetric NAT: relayed for good.
    let sym = World::start(Nat::Symmetric, hearth, &dir.join("sym"))?;
    let alice = sym.alice(0)?;
    wait("the first answer through the relay", || {
        ask_bob(&alice).then_some(())
    })?;
    let relayed = median_ms(ROUND_TRIPS, || {
        ask_bob(&alice).then_some(()).context("bob did not answer")
    })?;
    let still = link_to(&alice, "bob.os").unwrap_or_default();
    drop(alice);
    let (s_tried, s_won) = sym.punches(attempts)?;
    drop(sym);

    let pct = |won: usize, tried: usize| 100.0 * won as f64 / tried.max(1) as f64;
    let rows = vec![
        Row::new("boot to relay reservation (bob)", "ms", ms(reserved)),
        Row::new(
            "reservation to a scout's first answer (bob's record in the DHT)",
            "ms",
            ms(scouted),
        ),
        Row::new(
            "boot to first answer through the relay (fresh alice)",
            "ms",
            ms(first),
        ),
        Row::new(
            "first message to direct connection (DCUtR)",
            "ms",
            ms(to_direct),
        ),
        Row::new("round trip alice->bob direct (median)", "ms", direct)
            .baseline("raw TCP same hops", raw),
        Row::new(
            format!("round trip alice->bob relayed (median; {still})"),
            "ms",
            relayed,
        )
        .baseline("raw TCP same hops", raw),
        Row::new(
            format!("hole punches ok, easy NAT ({won}/{tried})"),
            "%",
            pct(won, tried),
        ),
        Row::new(
            format!("hole punches ok, symmetric NAT ({s_won}/{s_tried})"),
            "%",
            pct(s_won, s_tried),
        ),
    ];
    Ok((rows, no_delay))
}
