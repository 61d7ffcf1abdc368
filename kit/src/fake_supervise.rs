//! The supervisor of `kit f`: runs the planned nodes, reports a node that
//! exits on its own while the others keep running, and restarts it on
//! `r` + Enter or, with `--restart`, by itself.
//!
//! The loop takes one [`Event`] at a time: a node exited, a line on stdin,
//! a restart came due, the apps finished installing, or a stop signal.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::future::{select_all, FutureExt};
use tokio::sync::mpsc;

use super::{
    first_bootstrap, install_apps, spawn_node, stop_all, stopped_by_us, FakeArgs, Planned, Running,
    StopSignals,
};

/// Lines typed on stdin waiting for the loop: a person types slowly; a
/// pipe that floods us just waits.
const STDIN_LINES_CAPACITY: usize = 8;

/// Wait before `--restart` starts a node again, so a node that fails at
/// once does not spin.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// A node that exits sooner than this after a `--restart` is failing at
/// boot: it is not restarted again by itself (`r` + Enter still does).
const CRASH_AT_BOOT: Duration = Duration::from_secs(5);

/// One planned node and, while it runs, its process.
struct Slot<'a> {
    planned: &'a Planned,
    running: Option<Running>,
    started: Instant,
    /// When `--restart` starts it again.
    restart_at: Option<Instant>,
    /// How it last exited on its own.
    last_exit: Option<ExitStatus>,
}

enum Event {
    Exited(usize, std::io::Result<ExitStatus>),
    Line(Option<String>),
    RestartDue,
    Installed(Result<()>),
    Signal(&'static str),
}

pub(super) async fn supervise(hearth: &Path, args: &FakeArgs, nodes: &[Planned]) -> Result<()> {
    let mut signals = StopSignals::new()?;
    let mut slots: Vec<Slot> = Vec::with_capacity(nodes.len());
    let mut bootstrap = None;
    let many = nodes.len() > 1;
    for (i, node) in nodes.iter().enumerate() {
        let running = spawn_node(hearth, node, &args.extra, bootstrap.as_deref(), many)?;
        slots.push(Slot {
            planned: node,
            running: Some(running),
            started: Instant::now(),
            restart_at: None,
            last_exit: None,
        });
        eprintln!(
            "kit: node {} on port {}, home {} (Ctrl-C stops {})",
            node.name,
            node.port,
            node.home.path().display(),
            if many { "all" } else { "it" }
        );
        if i == 0 && many {
            tokio::select! {
                addr = first_bootstrap(node.home.path()) => match addr {
                    Ok(addr) => bootstrap = Some(addr),
                    Err(e) => {
                        stop_slots(&mut slots, &mut signals).await?;
                        return Err(e.context(format!("{} did not come up", node.name)));
                    }
                },
                name = signals.recv() => {
                    eprintln!("kit: {name}: stopping");
                    stop_slots(&mut slots, &mut signals).await?;
                    return Ok(());
                }
            }
        }
    }
    let homes: Vec<_> = nodes.iter().map(|n| n.home.path().to_path_buf()).collect();
    let install = install_apps(&args.apps, &homes);
    tokio::pin!(install);
    let mut installing = !args.apps.is_empty();
    let mut lines = stdin_lines();
    loop {
        let live: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].running.is_some())
            .collect();
        let restart_at = slots.iter().filter_map(|s| s.restart_at).min();
        if live.is_empty() && restart_at.is_none() && !(many && lines.is_some()) {
            break; // Nothing runs and nothing will.
        }
        let event = next_event(
            &mut slots,
            &live,
            restart_at,
            &mut lines,
            &mut install,
            installing,
            &mut signals,
        )
        .await;
        match event {
            Event::Exited(i, status) => {
                let status = status.context("waiting for a node")?;
                node_exited(&mut slots[i], status, args.restart, many).await;
                if !many && slots[i].restart_at.is_none() {
                    break;
                }
            }
            Event::Line(None) => lines = None,
            Event::Line(Some(line)) => match line.trim() {
                "r" => restart_exited(&mut slots, hearth, args, &bootstrap)?,
                "" => {}
                other => eprintln!("kit: `{other}`: type r + Enter to restart exited nodes"),
            },
            Event::RestartDue => {
                let now = Instant::now();
                for (i, slot) in slots.iter_mut().enumerate() {
                    if slot.restart_at.is_some_and(|at| at <= now) {
                        restart(slot, hearth, args, bootstrap_for(i, &bootstrap))?;
                    }
                }
            }
            Event::Installed(result) => {
                installing = false;
                if let Err(e) = result {
                    eprintln!("kit: starting the apps failed: {e:#}");
                }
            }
            Event::Signal(name) => {
                eprintln!("kit: {name}: stopping (again to kill)");
                break;
            }
        }
    }
    let stopped = stop_slots(&mut slots, &mut signals).await?;
    let failed: Vec<String> = slots
        .iter()
        .filter_map(|s| Some((s, s.last_exit?)))
        .filter(|(s, _)| !stopped.contains(&s.planned.name))
        .map(|(s, status)| format!("node {} exited with {status}", s.planned.name))
        .collect();
    for name in &stopped {
        eprintln!("kit: node {name} stopped");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!(failed.join("; "))
    }
}

/// Selects the next event; handles none.
async fn next_event(
    slots: &mut [Slot<'_>],
    live: &[usize],
    restart_at: Option<Instant>,
    lines: &mut Option<mpsc::Receiver<String>>,
    install: &mut std::pin::Pin<&mut impl std::future::Future<Output = Result<()>>>,
    installing: bool,
    signals: &mut StopSignals,
) -> Event {
    let exits = slots
        .iter_mut()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.running.as_mut()?)))
        .map(|(i, r)| r.child.wait().map(move |status| (i, status)).boxed())
        .collect::<Vec<_>>();
    let any_exit = async {
        if live.is_empty() {
            std::future::pending().await
        } else {
            select_all(exits).await.0
        }
    };
    let line = async {
        match lines {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    };
    let due = async {
        match restart_at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        (i, status) = any_exit => Event::Exited(i, status),
        line = line => Event::Line(line),
        () = due => Event::RestartDue,
        result = install.as_mut(), if installing => Event::Installed(result),
        name = signals.recv() => Event::Signal(name),
    }
}

/// A node ended without being asked: say so, copy out its last lines, and
/// plan its restart under `--restart`.
async fn node_exited(slot: &mut Slot<'_>, status: ExitStatus, auto_restart: bool, many: bool) {
    if let Some(mut running) = slot.running.take() {
        for copier in running.output.drain(..) {
            let _ = copier.await;
        }
    }
    slot.last_exit = Some(status);
    let name = &slot.planned.name;
    let up_for = slot.started.elapsed();
    if auto_restart && up_for >= CRASH_AT_BOOT {
        slot.restart_at = Some(Instant::now() + RESTART_DELAY);
        eprintln!("kit: node {name} exited ({status}); restarting it (--restart)");
    } else if auto_restart {
        eprintln!(
            "kit: node {name} exited ({status}) {:.1} s after it started; not restarting it \
             by itself; r + Enter tries again",
            up_for.as_secs_f64()
        );
    } else if many {
        eprintln!(
            "kit: node {name} exited ({status}); the others keep running; r + Enter restarts it"
        );
    } else {
        eprintln!("kit: node {name} exited ({status})");
    }
}

/// `r` + Enter: every node that is not running starts again.
fn restart_exited(
    slots: &mut [Slot<'_>],
    hearth: &Path,
    args: &FakeArgs,
    bootstrap: &Option<String>,
) -> Result<()> {
    let mut any = false;
    for (i, slot) in slots.iter_mut().enumerate() {
        if slot.running.is_none() {
            restart(slot, hearth, args, bootstrap_for(i, bootstrap))?;
            any = true;
        }
    }
    if !any {
        eprintln!("kit: every node is running; nothing to restart");
    }
    Ok(())
}

fn restart(
    slot: &mut Slot<'_>,
    hearth: &Path,
    args: &FakeArgs,
    bootstrap: Option<&str>,
) -> Result<()> {
    let many = args.nodes > 1;
    let running = spawn_node(hearth, slot.planned, &args.extra, bootstrap, many)?;
    slot.running = Some(running);
    slot.started = Instant::now();
    slot.restart_at = None;
    slot.last_exit = None;
    eprintln!(
        "kit: node {} restarted on home {}",
        slot.planned.name,
        slot.planned.home.path().display()
    );
    Ok(())
}

/// The first node is the others' bootstrap and takes none itself.
fn bootstrap_for(i: usize, bootstrap: &Option<String>) -> Option<&str> {
    bootstrap.as_deref().filter(|_| i > 0)
}

/// Stops every running node; returns the names of those it stopped.
async fn stop_slots(slots: &mut [Slot<'_>], signals: &mut StopSignals) -> Result<Vec<String>> {
    let mut running: Vec<Running> = slots.iter_mut().filter_map(|s| s.running.take()).collect();
    let statuses = stop_all(&mut running, signals).await?;
    let mut stopped = Vec::with_capacity(running.len());
    for (node, status) in running.iter().zip(statuses) {
        if status.success() || stopped_by_us(status) {
            stopped.push(node.name.clone());
        } else if let Some(slot) = slots.iter_mut().find(|s| s.planned.name == node.name) {
            slot.last_exit = Some(status);
        }
    }
    Ok(stopped)
}

/// Lines from stdin, read on a thread of their own (a blocking read must
/// not hold the runtime at shutdown); `None` once stdin is closed.
fn stdin_lines() -> Option<mpsc::Receiver<String>> {
    let (lines_tx, lines_rx) = mpsc::channel(STDIN_LINES_CAPACITY);
    let spawned = std::thread::Builder::new()
        .name("kit-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if lines_tx.blocking_send(line.clone()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    spawned.ok().map(|_| lines_rx)
}
