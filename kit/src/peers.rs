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
    println!(
        "{:<20} {:<10} {:<13} {:<53} ADDRESS",
        "NAME", "RTT", "LINK", "PEER ID"
    );
    for p in &peers {
        let rtt = p.rtt_ms.map_or("-".to_string(), |ms| format!("{ms:.2} ms"));
        // Direct or through a relay, and over which transport (NAT reach).
        let link = match (&p.connection, &p.transport) {
            (Some(c), Some(t)) => format!("{c}/{t}"),
            _ => "-".into(),
        };
        println!(
            "{:<20} {:<10} {:<13} {:<53} {}",
            p.name.as_deref().unwrap_or("(unnamed)"),
            rtt,
            link,
            p.peer_id,
            address_column(&p.addrs)
        );
    }
    Ok(())
}

/// One address per peer: the first TCP one (what `--bootstrap` takes),
/// else the first, with how many others the node knows.
fn address_column(addrs: &[String]) -> String {
    let mut unique: Vec<&String> = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    let Some(first) = unique
        .iter()
        .find(|a| a.contains("/tcp/"))
        .or(unique.first())
    else {
        return "-".into();
    };
    match unique.len() - 1 {
        0 => first.to_string(),
        more => format!("{first} (+{more})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_per_peer_tcp_first() {
        let addrs = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(address_column(&[]), "-");
        assert_eq!(
            address_column(&addrs(&[
                "/ip4/1.2.3.4/udp/5/quic-v1",
                "/ip4/1.2.3.4/tcp/6"
            ])),
            "/ip4/1.2.3.4/tcp/6 (+1)"
        );
        assert_eq!(
            address_column(&addrs(&["/ip4/1.2.3.4/tcp/6", "/ip4/1.2.3.4/tcp/6"])),
            "/ip4/1.2.3.4/tcp/6"
        );
    }
}
