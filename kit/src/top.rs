//! `kit top`: `kit ps` refreshing, busiest first. Each frame orders the
//! processes by events handled since the previous frame (then by total
//! handled, then by id). Plain output: on a terminal each frame clears the
//! screen with ANSI escapes; elsewhere frames follow one another after a
//! blank line. `q` or Ctrl-C quits (a terminal's input is read without
//! echo while it runs, and restored after), as does `--iterations N`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use hearth::api::{NodeStatus, ProcessStatus, STATUS_PATH};

use crate::admin::{AdminClient, NodeArgs, DEFAULT_HTTP_TIMEOUT};
use crate::ps;

/// How often stdin is looked at for `q` while waiting for the next frame.
const KEY_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Seconds between refreshes
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after this many frames (default: until q or Ctrl-C)
    #[arg(long)]
    pub iterations: Option<u64>,
}

pub fn run(args: &TopArgs) -> Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.05) {
        anyhow::bail!("--interval must be at least 0.05 seconds");
    }
    let interval = Duration::from_secs_f64(args.interval);
    let client = AdminClient::connect(&args.node, DEFAULT_HTTP_TIMEOUT)?;
    let status: NodeStatus = serde_json::from_slice(&client.get(STATUS_PATH)?)?;
    let tty = std::io::stdout().is_terminal();
    let keys = Keys::open();
    let mut before: Option<HashMap<String, u64>> = None;
    let mut frame = 0u64;
    loop {
        let processes = ps::fetch(&client)?;
        let (sorted, activity) = by_activity(processes, before.as_ref());
        let mut out = String::new();
        if tty {
            out.push_str("\x1b[2J\x1b[H");
        } else if frame > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "kit top: {} (port {}), every {:.1}s; ACTIVE = events handled since the last \
             frame; q quits\n",
            status.name, status.http_port, args.interval
        ));
        for line in ps::table(&sorted, Some(&activity)) {
            out.push_str(&line);
            out.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
        drop(stdout);
        before = Some(
            sorted
                .iter()
                .map(|p| (p.id.clone(), p.handled.unwrap_or(0)))
                .collect(),
        );
        frame += 1;
        if args.iterations.is_some_and(|n| frame >= n) {
            return Ok(());
        }
        let next = Instant::now() + interval;
        while Instant::now() < next {
            if keys.as_ref().is_some_and(Keys::quit_pressed) {
                return Ok(());
            }
            std::thread::sleep(KEY_POLL.min(next.saturating_duration_since(Instant::now())));
        }
    }
}

/// The processes busiest first, with their activity since `before` (the
/// total handled on the first frame, when there is no `before`).
fn by_activity(
    processes: Vec<ProcessStatus>,
    before: Option<&HashMap<String, u64>>,
) -> (Vec<ProcessStatus>, Vec<u64>) {
    let mut rows: Vec<(u64, ProcessStatus)> = processes
        .into_iter()
        .map(|p| {
            let now = p.handled.unwrap_or(0);
            let was = before.map_or(0, |b| b.get(&p.id).copied().unwrap_or(0));
            // A reinstall starts from zero again.
            (now.checked_sub(was).unwrap_or(now), p)
        })
        .collect();
    rows.sort_by(|(a, p), (b, q)| {
        b.cmp(a)
            .then(q.handled.cmp(&p.handled))
            .then(p.id.cmp(&q.id))
    });
    rows.into_iter().map(|(a, p)| (p, a)).unzip()
}

/// A terminal's input read key by key without echo; restored on drop.
struct Keys {
    saved: libc::termios,
}

impl Keys {
    /// `None` when stdin is not a terminal (then only Ctrl-C, as a
    /// signal, or `--iterations` end `kit top`).
    fn open() -> Option<Self> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        // SAFETY: plain termios calls on fd 0 with a zeroed struct that
        // tcgetattr fills before it is read.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            // No line buffering, no echo, and Ctrl-C as a byte (so the
            // terminal is restored before kit exits).
            raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
            raw.c_cc[libc::VMIN] = 0;
            raw.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(Self { saved })
        }
    }

    /// Whether `q`, `Q` or Ctrl-C is among the keys typed since last time.
    fn quit_pressed(&self) -> bool {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a local buffer of the given length; VMIN 0
        // makes the read return at once.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        n > 0
            && buf[..n as usize]
                .iter()
                .any(|b| matches!(b, b'q' | b'Q' | 3))
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `open`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, handled: u64) -> ProcessStatus {
        ProcessStatus {
            id: id.into(),
            state: "running".into(),
            queued_requests: 0,
            queued_bytes: 0,
            public: false,
            networking: false,
            restarts: 0,
            handled: Some(handled),
            memory_bytes: None,
        }
    }

    #[test]
    fn busiest_since_the_last_frame_first() {
        let before: HashMap<String, u64> =
            [("a".into(), 100), ("b".into(), 0), ("c".into(), 50)].into();
        let (sorted, activity) = by_activity(
            vec![
                status("a", 101),
                status("b", 7),
                status("c", 60),
                status("d", 0),
            ],
            Some(&before),
        );
        let ids: Vec<&str> = sorted.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a", "d"]);
        assert_eq!(activity, [10, 7, 1, 0]);
    }
}
