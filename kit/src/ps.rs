//! `kit ps`: the processes of a running node, one line each: state,
//! restarts, mailbox depth (queued requests and bytes), guest memory,
//! messages handled, and the `public` and networking flags. `table` is
//! shared with `kit top`.

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
    let processes = fetch(&client)?;
    if args.json {
        println!("{}", serde_json::to_string(&processes)?);
        return Ok(());
    }
    for line in table(&processes, None) {
        println!("{line}");
    }
    Ok(())
}

/// The node's processes, sorted by id.
pub fn fetch(client: &AdminClient) -> Result<Vec<ProcessStatus>> {
    let bytes = client.get(PS_PATH)?;
    serde_json::from_slice(&bytes).context("the node's answer is not a process list")
}

/// Bytes as a short figure without spaces: `812`, `64K`, `1.5M`, `2.0G`.
pub fn short_bytes(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K {
        format!("{bytes}")
    } else if b < K * K {
        format!("{:.0}K", b / K)
    } else if b < K * K * K {
        format!("{:.1}M", b / (K * K))
    } else {
        format!("{:.1}G", b / (K * K * K))
    }
}

/// A header and one line per process. With `activity` (`kit top`), a
/// first column of events handled since the last refresh, in the order
/// given.
pub fn table(processes: &[ProcessStatus], activity: Option<&[u64]>) -> Vec<String> {
    let width = processes
        .iter()
        .map(|p| p.id.len())
        .max()
        .unwrap_or(0)
        .max("PROCESS".len());
    let lead = |a: &str| match activity {
        Some(_) => format!("{a:>7}  "),
        None => String::new(),
    };
    let mut lines = vec![format!(
        "{}{:<width$}  {:<10} {:>8} {:>6} {:>9} {:>7} {:>10}  FLAGS",
        lead("ACTIVE"),
        "PROCESS",
        "STATE",
        "RESTARTS",
        "QUEUED",
        "BYTES",
        "MEMORY",
        "HANDLED"
    )];
    for (i, p) in processes.iter().enumerate() {
        let flags: Vec<&str> = [(p.public, "public"), (p.networking, "networked")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        let active = activity.and_then(|a| a.get(i)).copied().unwrap_or(0);
        lines.push(format!(
            "{}{:<width$}  {:<10} {:>8} {:>6} {:>9} {:>7} {:>10}  {}",
            lead(&active.to_string()),
            p.id,
            p.state,
            p.restarts,
            p.queued_requests,
            p.queued_bytes,
            p.memory_bytes.map_or("-".into(), short_bytes),
            p.handled.map_or("-".into(), |h| h.to_string()),
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

    pub(crate) fn status(id: &str, public: bool, networking: bool) -> ProcessStatus {
        ProcessStatus {
            id: id.into(),
            state: "running".into(),
            queued_requests: 0,
            queued_bytes: 0,
            public,
            networking,
            restarts: 0,
            handled: Some(5),
            memory_bytes: Some(3 << 20),
        }
    }

    #[test]
    fn one_line_per_process_under_a_header() {
        let mut kv = status("kv:distro:sys", false, false);
        kv.handled = None;
        kv.memory_bytes = None;
        let lines = table(&[status("echo:echo:sys", true, true), kv], None);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("PROCESS"), "{lines:?}");
        let echo: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            echo,
            [
                "echo:echo:sys",
                "running",
                "0",
                "0",
                "0",
                "3.0M",
                "5",
                "public,networked"
            ]
        );
        assert!(lines[2].ends_with(" -"), "{lines:?}");
        assert!(
            lines[2].contains(" - "),
            "no memory for a native service: {lines:?}"
        );
    }

    #[test]
    fn short_bytes_have_no_spaces() {
        assert_eq!(short_bytes(812), "812");
        assert_eq!(short_bytes(65536), "64K");
        assert_eq!(short_bytes(1536 * 1024), "1.5M");
    }
}
