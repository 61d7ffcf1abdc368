//! `kit bench SUITE [--json]`: performance figures with their baselines,
//! measured in the same run, as a table. Targets are printed, never
//! asserted: the machines are noisy, so this is a report, not a test.

mod ask;
mod chat;
mod dev;
mod http;
mod loadgen;
mod local;
mod nat;
mod net;
mod python;
mod rooms;
mod scale;
mod scratch;
mod state;
mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hearth::api::PackageFile;
use hearth::{Node, NodeConfig};

use crate::start::collect_package;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Suite {
    /// Messaging, spawn and memory on one node.
    Local,
    /// HTTP to a process endpoint vs plain axum; WebSocket publish fan-out.
    Http,
    /// Messaging between processes on two nodes over loopback.
    Net,
    /// Durable state (group commit vs raw sled), kv, vfs, boot time.
    State,
    /// Live rooms (`rooms:distro:sys`) on one node and across eleven.
    Rooms,
    /// Python processes (componentize-py) next to Rust ones.
    Python,
    /// Nodes behind NATs: relay, hole punching (namespaces; needs root).
    Nat,
    /// The chat app: history pages, a 10,000-message room, five member nodes.
    Chat,
    /// The developer loop: cold `kit b`, save-to-running under `kit watch`, `kit t`.
    Dev,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark suite to run.
    suite: Suite,
    /// Print the table as JSON.
    #[arg(long)]
    json: bool,
    /// `local`: also measure N idle processes on a node of their own
    /// (spawn rate, memory, boot with them installed).
    #[arg(long, value_name = "N")]
    scale: Option<usize>,
}

/// The repository this kit was built from (for the bench packages).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Build a package of this repository in a scratch directory (never in
/// the checkout) and return its files.
fn package(rel: &str) -> Result<Vec<PackageFile>> {
    let built = scratch::build(&repo_root(), rel).with_context(|| format!("build {rel}"))?;
    Ok(collect_package(&built)?.files)
}

/// Which message rows a profiling run of `local` or `net` repeats:
/// `HEARTH_BENCH_MESSAGE_ROW` / `HEARTH_BENCH_NET_ROW` set to `ping` (the
/// round trips), `blast` (the fire-and-forget messages), or unset (both).
#[derive(Clone, Copy, PartialEq, Eq)]
enum MessageRows {
    Both,
    Ping,
    Blast,
}

impl MessageRows {
    fn from_env(var: &str) -> Result<Self> {
        match std::env::var(var).unwrap_or_default().as_str() {
            "" => Ok(Self::Both),
            "ping" => Ok(Self::Ping),
            "blast" => Ok(Self::Blast),
            other => anyhow::bail!("{var}={other}: expected ping or blast"),
        }
    }

    /// How many of `loops` each row runs: (round trips, fire-and-forget).
    fn split<T: Copy + Default>(self, loops: T) -> (T, T) {
        match self {
            Self::Both => (loops, loops),
            Self::Ping => (loops, T::default()),
            Self::Blast => (T::default(), loops),
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if let Suite::Nat = args.suite {
        return nat::run(args.json); // its own network, nodes as children
    }
    if let Suite::Dev = args.suite {
        return dev::run(args.json); // the real kit and hearth binaries
    }
    if let Suite::Python = args.suite {
        return python::run(args.json); // its own nodes and packages
    }
    if let Some(n) = args.scale {
        scale::fits(n)?; // before the other rows, not after
    }
    // The rooms suite runs native endpoints only: no guest to build.
    let (echo, probe) = match args.suite {
        Suite::Rooms => (Vec::new(), Vec::new()),
        _ => (package("apps/echo")?, package("tests/apps/probe")?),
    };
    let chat = match args.suite {
        Suite::Http => package("apps/notebook")?,
        Suite::Chat => package("apps/chat")?,
        Suite::Local
        | Suite::Net
        | Suite::State
        | Suite::Rooms
        | Suite::Python
        | Suite::Nat
        | Suite::Dev => Vec::new(),
    };
    let home = std::env::temp_dir().join(format!("hearth-bench-{}", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
    let result = runtime.block_on(async {
        let mut config = NodeConfig::new(&home, "bench.os");
        config.http_port = 0;
        config.register_run_file = false;
        config.net.listen_ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        config.net.mdns = false;
        config.http.password = Some(hearth::http::Password(http::PASSWORD.into()));
        let node = Node::start(config).await?;
        let rows = match args.suite {
            Suite::Local => local::run(&node, echo, probe, args.scale).await,
            Suite::Http => http::run(&node, chat).await,
            Suite::Net => net::run(&node, probe).await,
            Suite::State => state::run(&node, probe, &home.join("scratch")).await,
            Suite::Rooms => rooms::run(&node).await,
            Suite::Python | Suite::Nat | Suite::Dev => Ok(Vec::new()),
            Suite::Chat => chat::run(&node, chat, echo, probe, &home).await,
        };
        node.shutdown().await;
        rows
    });
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(scratch::run_dir());
    let rows = result?;
    let title = match args.suite {
        Suite::Local => "kit bench local (one node, 2-core machine figures are noisy; run twice)",
        Suite::Http => "kit bench http (one node, load generator in the same process; 2-core machine figures are noisy)",
        Suite::State => "kit bench state (one node; durable = on disk when acknowledged; 2-core figures are noisy)",
        Suite::Net => "kit bench net (two nodes in one process over loopback TCP; baselines in the same run)",
        Suite::Python => "kit bench python",
        Suite::Nat => "kit bench nat",
        Suite::Dev => "kit bench dev",
        Suite::Chat => "kit bench chat (six nodes in one process over loopback TCP; baselines in the same run)",
        Suite::Rooms => "kit bench rooms (up to eleven nodes in one process over loopback TCP; native endpoints publish and subscribe; baselines in the same run)",
    };
    table::print(title, &rows, args.json);
    Ok(())
}
