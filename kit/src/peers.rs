//! `kit peers`: the nodes a node is connected to, with their names,
//! addresses and round-trip times.

use anyhow::{Context, Result};
use hearth::api::{PeerInfo, PEERS_PATH};

use crate::admin::{AdminClient, NodeArgs, DEFAULT_HTTP_TIMEOUT};

#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &PeersArgs) -> Result<()> {
    let client = AdminClient::connect(&args.node, DEFAULT_HTTP_TIMEOUT)?;
    let bytes = client.get(PEERS_PATH)?;
    let mut peers: Vec<PeerInfo> =
        serde_json::from_slice(&bytes).context("the node's answer is not a peer list")?;
    peers.sort_by(|a, b| a.name.cmp(&b.name).then(a.peer_id.cmp(&b.peer_id)));
    if args.json {
        println!("{}", serde_json::to_string(&peers)?);
        return Ok(());
    }
    if peers.is_empty() {
        println!("no peers connected");
        return Ok(());
    }
    for p in &peers {
        let rtt = p.rtt_ms.map_or("-".to_string(), |ms| format!("{ms:.2} ms"));
        println!(
            "{:<20} {:<10} {}  {}",
            p.name.as_deref().unwrap_or("(unnamed)"),
            rtt,
            p.peer_id,
            p.addrs.join(" ")
        );
    }
    Ok(())
}
