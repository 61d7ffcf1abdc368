//! `kit logs [PROCESS] [--follow]`: a node's log, all of it or the lines
//! of one process: those logged in its `process{id=PROCESS}` span, and
//! those outside any process's span that name it.
//!
//! The log is the one `kit f` keeps in the node's home
//! (`<home>/`[`NODE_LOG`]); the node is found as for every other
//! subcommand (`--port`, `--home`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::admin::{locate, NodeArgs};
use crate::fake::NODE_LOG;

/// How often `--follow` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// Longest line read, in bytes; longer ones are cut into pieces.
const MAX_LINE_BYTES: u64 = 64 * 1024;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only this process's lines (`process:package:publisher`)
    pub process: Option<String>,
    /// Keep printing new lines as they come (Ctrl-C stops)
    #[arg(short, long)]
    pub follow: bool,
    /// Print at most this many of the latest lines first
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(args: &LogsArgs) -> Result<()> {
    let location = locate(&args.node)?;
    let path = location.home.join(NODE_LOG);
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} does not exist: `kit logs` reads the log that `kit f` keeps for the nodes \
             it runs",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let wanted = |line: &str| match &args.process {
        None => true,
        Some(process) => belongs_to(line, process),
    };
    let mut last = VecDeque::with_capacity(args.lines.min(10_000));
    let mut offset = read_lines(&mut file, 0, |line| {
        if wanted(line) {
            if last.len() == args.lines {
                last.pop_front();
            }
            if args.lines > 0 {
                last.push_back(line.to_string());
            }
        }
    })?;
    for line in &last {
        println!("{line}");
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        // The log moved to node.log.1 and started again: read the new one.
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size < offset {
            file = reopen(&path)?;
            offset = 0;
        }
        offset = read_lines(&mut file, offset, |line| {
            if wanted(line) {
                println!("{line}");
            }
        })?;
    }
}

/// Whether a log line is `process`'s: logged in its span, or outside any
/// process's span and naming it (installs, crashes seen by the node). A
/// line another process logged is never `process`'s, even if it names it.
fn belongs_to(line: &str, process: &str) -> bool {
    const SPAN: &str = "process{id=";
    match line.find(SPAN) {
        Some(at) => line[at + SPAN.len()..]
            .strip_prefix(process)
            .is_some_and(|rest| rest.starts_with('}')),
        None => line.contains(process),
    }
}

fn reopen(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))
}

/// Calls `each` for every whole line from `offset`; returns the offset
/// after the last whole line (a partly written one is read next time).
fn read_lines(file: &mut std::fs::File, offset: u64, mut each: impl FnMut(&str)) -> Result<u64> {
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut offset = offset;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)?;
        if read == 0 || (line.last() != Some(&b'\n') && (read as u64) < MAX_LINE_BYTES) {
            return Ok(offset);
        }
        offset += read as u64;
        each(String::from_utf8_lossy(&line).trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_gets_its_own_lines_only() {
        let echo = "echo:echo:sys";
        let own = "2026-11-29T22:00:00Z  INFO process{id=echo:echo:sys}: hearth: sent 11 bytes";
        let other = "2026-11-29T22:00:00Z  INFO process{id=chat:chat:sys}: asked echo:echo:sys";
        let longer = "2026-11-29T22:00:00Z  INFO process{id=echo:echo:sys2}: hi";
        let node = "2026-11-29T22:00:00Z  INFO hearth::package: installed echo:echo:sys";
        assert!(belongs_to(own, echo));
        assert!(!belongs_to(other, echo), "chat's line naming echo");
        assert!(!belongs_to(longer, echo));
        assert!(belongs_to(node, echo));
        assert!(!belongs_to("2026 INFO hearth: booted", echo));
    }

    #[test]
    fn whole_lines_only_and_offsets_resume() {
        let tmp = crate::admin::tests::TempDir::new("logs");
        let path = tmp.0.join("node.log");
        std::fs::write(&path, "a\nb\npartial").unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        let mut seen = Vec::new();
        let offset = read_lines(&mut file, 0, |l| seen.push(l.to_string())).unwrap();
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(offset, 4);
        std::fs::write(&path, "a\nb\npartial line\nc\n").unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        seen.clear();
        read_lines(&mut file, offset, |l| seen.push(l.to_string())).unwrap();
        assert_eq!(seen, ["partial line", "c"]);
    }
}
