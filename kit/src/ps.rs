//! `kit ps`: the processes of a running node, one line each: state,
//! mailbox depth (queued requests and bytes), and the `public` and
//! networking flags.

use anyhow::{Context, Result};
use hearth::api::{ProcessStatus, PS_PATH};

use crate::admin::{AdminClient, NodeArgs, DEFAULT_HTTP_TIMEOUT};

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &PsArgs) -> Result<()> {
    let client = AdminClient::connect(&args.node, DEFAULT_HTTP_TIMEOUT)?;
    let bytes = client.get(PS_PATH)?;
    let processes: Vec<ProcessStatus> =
        serde_json::from_slice(&bytes).context("the node's answer is not a process list")?;
    if args.json {
        println!("{}", serde_json::to_string(&processes)?);
        return Ok(());
    }
    for line in table(&processes) {
        println!("{line}");
    }
    Ok(())
}

fn table(processes: &[ProcessStatus]) -> Vec<String> {
    let width = processes
        .iter()
        .map(|p| p.id.len())
        .max()
        .unwrap_or(0)
        .max("PROCESS".len());
    let mut lines = vec![format!(
        "{:<width$}  {:<8} {:>6} {:>9}  FLAGS",
        "PROCESS", "STATE", "QUEUED", "BYTES"
    )];
    for p in processes {
        let flags: Vec<&str> = [(p.public, "public"), (p.networking, "networked")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        lines.push(format!(
            "{:<width$}  {:<8} {:>6} {:>9}  {}",
            p.id,
            p.state,
            p.queued_requests,
            p.queued_bytes,
            if flags.is_empty() {
                "-".to_string()
            } else {
                flags.join(",")
            }
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_process_under_a_header() {
        let p = |id: &str, public, networking| ProcessStatus {
            id: id.into(),
            state: "running".into(),
            queued_requests: 0,
            queued_bytes: 0,
            public,
            networking,
        };
        let lines = table(&[
            p("echo:echo:sys", true, true),
            p("kv:distro:sys", false, false),
        ]);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("PROCESS"), "{lines:?}");
        assert!(lines[1].ends_with("public,networked"), "{lines:?}");
        assert!(lines[2].ends_with(" -"), "{lines:?}");
    }
}
