//! `hearth`: boot a node. Parses the command line and hands over to the
//! library.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use hearth::{Node, NodeConfig};

#[derive(Parser, Debug)]
#[command(
    name = "hearth",
    version,
    about = "A Hearth node: hosts WebAssembly processes that talk by messages"
)]
struct Args {
    /// Directory for the node's secret, packages and state.
    #[arg(long, env = "HEARTH_HOME")]
    home: PathBuf,
    /// The node's name, such as alice.os.
    #[arg(long)]
    name: String,
    /// HTTP port for the UI and the admin API (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to serve HTTP on. The admin API answers loopback clients only,
    /// whatever this is.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// File whose first line becomes the node password for browser logins
    /// (stored as a salted Argon2id hash; the file can be deleted after).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Mark session cookies Secure (the node is served over TLS).
    #[arg(long)]
    secure_cookies: bool,
    /// A reverse proxy whose X-Forwarded-For / Forwarded header names the
    /// client (repeatable). Without it such requests are never local.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<IpAddr>,
    /// Another origin the node is served under, such as
    /// https://hearth.example.com behind a proxy (repeatable).
    #[arg(long = "origin", value_name = "URL")]
    origins: Vec<String>,
    #[command(flatten)]
    net: NetArgs,
}

/// Peer-to-peer options.
#[derive(clap::Args, Debug)]
struct NetArgs {
    /// TCP and UDP (QUIC) port for peers (0 picks free ones).
    #[arg(long, default_value_t = 0)]
    p2p_port: u16,
    /// Address to accept peers on.
    #[arg(long, default_value = "0.0.0.0")]
    p2p_bind: IpAddr,
    /// TCP port for lanes, the direct connections messages move onto
    /// (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    lane_port: u16,
    /// A peer to join at boot, as /ip4/.../tcp/.../p2p/<peer id> (repeatable).
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Do not discover peers on the local network with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// Milliseconds a dial may take before waiting requests fail with offline.
    #[arg(long, default_value_t = 5000)]
    dial_timeout_ms: u64,
    /// Seconds an idle connection stays open.
    #[arg(long, default_value_t = 300)]
    idle_timeout_secs: u64,
    /// Most peer connections at once.
    #[arg(long, default_value_t = 256)]
    max_connections: u32,
    /// Serve as a relay for nodes behind NATs (circuit relay v2), within
    /// the --relay-max-* limits.
    #[arg(long)]
    relay: bool,
    /// A relay to reserve a slot on, as /ip4/.../tcp/.../p2p/<peer id>
    /// (repeatable: the first that accepts, the next when it goes away).
    #[arg(long = "relay-via", value_name = "MULTIADDR")]
    relay_via: Vec<String>,
    /// An address peers can dial us at, such as a relay's public
    /// /ip4/.../tcp/4001 (repeatable). Relays need one, given here or
    /// confirmed by AutoNAT, to grant reservations.
    #[arg(long = "external-addr", value_name = "MULTIADDR")]
    external_addrs: Vec<String>,
    /// Relay limit: reservations held at once.
    #[arg(long, default_value_t = hearth::net::relay::RelayLimits::default().max_reservations)]
    relay_max_reservations: usize,
    /// Relay limit: circuits open at once.
    #[arg(long, default_value_t = hearth::net::relay::RelayLimits::default().max_circuits)]
    relay_max_circuits: usize,
    /// Relay fairness: circuits one peer may have open at once.
    #[arg(long, default_value_t = hearth::net::relay::RelayLimits::default().max_circuits_per_peer)]
    relay_max_circuits_per_peer: usize,
    /// Relay fairness: new circuits one peer may open per minute.
    #[arg(long, default_value_t = hearth::net::relay::RelayLimits::default().circuits_per_peer_per_minute)]
    relay_circuits_per_peer_per_minute: u32,
    /// Relay limit: seconds a circuit lasts.
    #[arg(long, default_value_t = hearth::net::relay::RelayLimits::default().max_circuit_secs)]
    relay_max_circuit_secs: u64,
    /// Relay limit: bytes a circuit carries (both directions).
    #[arg(long, default_value_t = hearth::net::relay::RelayLimits::default().max_circuit_bytes)]
    relay_max_circuit_bytes: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = NodeConfig::new(&args.home, &args.name);
    config.http_port = args.port;
    config.http_bind = args.bind;
    config.http.secure_cookies = args.secure_cookies;
    config.http.trusted_proxies = args.trusted_proxies.clone();
    config.http.origins = args.origins.clone();
    config.net.port = args.net.p2p_port;
    config.net.listen_ip = args.net.p2p_bind;
    config.net.lane_port = args.net.lane_port;
    config.net.bootstrap = args.net.bootstrap.clone();
    config.net.mdns = !args.net.no_mdns;
    config.net.dial_timeout = std::time::Duration::from_millis(args.net.dial_timeout_ms);
    config.net.idle_timeout = std::time::Duration::from_secs(args.net.idle_timeout_secs);
    config.net.max_connections = args.net.max_connections;
    config.net.relay_via = args.net.relay_via.clone();
    config.net.external_addrs = args.net.external_addrs.clone();
    if args.net.relay {
        config.net.relay = Some(hearth::net::relay::RelayLimits {
            max_reservations: args.net.relay_max_reservations,
            max_circuits: args.net.relay_max_circuits,
            max_circuits_per_peer: args.net.relay_max_circuits_per_peer,
            circuits_per_peer_per_minute: args.net.relay_circuits_per_peer_per_minute,
            max_circuit_secs: args.net.relay_max_circuit_secs,
            max_circuit_bytes: args.net.relay_max_circuit_bytes,
            ..Default::default()
        });
    }
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?;
        let password = text.lines().next().unwrap_or("").to_string();
        config.http.password = Some(hearth::http::Password(password));
    }
    let node = Node::start(config).await.context("cannot start the node")?;
    println!(
        "hearth node {} serving http://{} (home {})",
        node.name(),
        node.http_addr(),
        node.home().display()
    );
    wait_for_signal().await;
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
