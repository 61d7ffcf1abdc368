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
