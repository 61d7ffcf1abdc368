//! `kit m [PROCESS]`: follow the messages a node routes, to and from one
//! process or all of them, one line each: time (UTC), kind (request,
//! response, fire-and-forget, error), size in bytes, source and target.
//! Metadata only: the node never sends message bodies.
//!
//! The node samples and bounds what it sends (`/admin/trace`: a few
//! watchers, a rate cap, a bounded buffer); what it had to drop is said
//! on stderr as the count grows.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hearth::api::{ApiError, TraceLine, SECRET_HEADER, TRACE_PATH};

use crate::admin::{locate, NodeArgs, NodeError};

/// Longest trace line read; longer ones are a wrong server.
const MAX_LINE_BYTES: u64 = 64 * 1024;
/// Time to connect and get the answer's head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// Only messages from or to this process (`process:package:publisher`)
    pub process: Option<String>,
    /// Stop after this many messages
    #[arg(long)]
    pub count: Option<u64>,
    /// Show one message in N (the node samples before sending)
    #[arg(long, default_value_t = 1)]
    pub sample: u32,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(args: &MonitorArgs) -> Result<()> {
    if args.sample == 0 {
        bail!("--sample must be at least 1");
    }
    let location = locate(&args.node)?;
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(CONNECT_TIMEOUT))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut url = format!(
        "http://127.0.0.1:{}{TRACE_PATH}?sample={}",
        location.port, args.sample
    );
    if let Some(process) = &args.process {
        let parsed: Result<hearth::types::ProcessId, _> = process.parse();
        if let Err(e) = parsed {
            bail!("{process:?} is not a process id (process:package:publisher): {e}");
        }
        url.push_str(&format!("&process={process}"));
    }
    let response = agent
        .get(&url)
        .header(SECRET_HEADER, &location.secret)
        .call()
        .map_err(|e| match e {
            ureq::Error::ConnectionFailed => anyhow::anyhow!(
                "no node answers on port {} (connection refused)",
                location.port
            ),
            e => anyhow::Error::new(e).context(format!("calling {url}")),
        })?;
    let status = response.status().as_u16();
    let mut body = response.into_body().into_reader();
    if !(200..300).contains(&status) {
        let mut bytes = Vec::new();
        (&mut body).take(MAX_LINE_BYTES).read_to_end(&mut bytes)?;
        return match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(error) => Err(NodeError { error }.into()),
            Err(_) => bail!("{url} answered HTTP {status}"),
        };
    }
    let mut reader = BufReader::new(body);
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{:<12}  {:<15} {:>8}  SOURCE -> TARGET",
        "TIME (UTC)", "KIND", "BYTES"
    )?;
    let mut shown = 0u64;
    let mut dropped = 0u64;
    let mut line = Vec::new();
    while args.count.is_none_or(|n| shown < n) {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)
            .context("reading the node's trace")?;
        if read == 0 {
            bail!("the node closed the trace (did it stop?)");
        }
        let parsed: TraceLine = serde_json::from_slice(&line).with_context(|| {
            format!("the node sent {:?}", String::from_utf8_lossy(&line).trim())
        })?;
        match parsed {
            TraceLine::Message { .. } => {
                writeln!(stdout, "{}", format_line(&parsed))?;
                stdout.flush()?;
                shown += 1;
            }
            TraceLine::Dropped { total } if total > dropped => {
                eprintln!(
                    "kit m: the node dropped {} messages so far (over its rate cap or this \
                     watcher's buffer); try --sample N or a PROCESS",
                    total
                );
                dropped = total;
            }
            TraceLine::Dropped { .. } => {}
        }
    }
    Ok(())
}

/// `HH:MM:SS.mmm` (UTC) of microseconds since the epoch.
fn clock(at_us: u64) -> String {
    let ms = at_us / 1000;
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

fn format_line(line: &TraceLine) -> String {
    match line {
        TraceLine::Message {
            at_us,
            source,
            target,
            bytes,
            kind,
            error,
            ..
        } => {
            let kind = match error {
                Some(e) => format!("{kind}:{e}"),
                None => kind.clone(),
            };
            format!(
                "{:<12}  {kind:<15} {bytes:>8}  {source} -> {target}",
                clock(*at_us)
            )
        }
        TraceLine::Dropped { total } => format!("({total} dropped)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_message() {
        let line = TraceLine::Message {
            at_us: 86_400_000_000 + 3_723_004_000,
            id: 1,
            source: "a.os@rpc:distro:sys".into(),
            target: "a.os@echo:echo:sys".into(),
            bytes: 37,
            kind: "request".into(),
            error: None,
        };
        assert_eq!(
            format_line(&line),
            "01:02:03.004  request               37  a.os@rpc:distro:sys -> a.os@echo:echo:sys"
        );
    }
}
