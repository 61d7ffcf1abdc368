//! `kit f`: run a development node in the foreground.
//!
//! Runs the `hearth` binary with its own home (a throw-away directory unless
//! `--home` is given), name and port, with its output going straight to the
//! terminal. Ctrl-C, SIGTERM or SIGHUP stop it gracefully (SIGTERM, then
//! SIGKILL after [`STOP_GRACE`] or on a second signal) and remove the
//! throw-away home.
//!
//! `--nodes N` runs N such nodes at once (alice.os, bob.os, ...), each
//! after the first bootstrapping from the first, their output lines behind
//! their names; Ctrl-C stops them all. A node that exits on its own is
//! reported and the others keep running; `r` + Enter (or `--restart`)
//! starts it again on the same home ([`supervise`]).
//!
//! Each `kit f` owns only its own children and shares nothing with other
//! `kit f` runs: no common helper process, directory or port. The child runs in its
//! own process group so that only this kit decides when it stops, and on
//! Linux it is told to stop if this kit dies without cleaning up.
//!
//! Unix only (signals and process groups).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures::future::join_all;
use hearth::api::{NodeStatus, STATUS_PATH};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;

use crate::admin::{run_file, AdminClient, NodeArgs, DEFAULT_PORT};

/// How long a stopping node gets to drain before it is killed. Enough for
/// processes to save state and peers to be told goodbye; short enough that a
/// stuck node does not hold the terminal.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Names given to the nodes of `kit f --nodes N`, in order.
const MANY_NAMES: [&str; 8] = [
    "alice.os", "bob.os", "carol.os", "dave.os", "erin.os", "frank.os", "grace.os", "heidi.os",
];

#[derive(Debug, clap::Args)]
pub struct FakeArgs {
    /// Node name [default: fake.os]
    #[arg(short, long)]
    pub name: Option<String>,
    /// HTTP port; with `--nodes N` the next nodes take the ports after it
    /// (0 lets each node pick one)
    #[arg(short, long, env = "HEARTH_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Keep the node's data in DIR (with `--nodes N`: DIR/<name>)
    /// [default: a throw-away directory]
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Start N nodes at once, named alice.os, bob.os, ...; every node after
    /// the first bootstraps from the first, so they find each other even
    /// without mDNS
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=MANY_NAMES.len() as i64))]
    pub nodes: u8,
    /// Build this package and start it on every node once it is up
    /// (repeatable)
    #[arg(long = "app", value_name = "DIR")]
    pub apps: Vec<PathBuf>,
    /// Restart a node that exits on its own (otherwise `r` + Enter does)
    #[arg(long)]
    pub restart: bool,
    /// Extra arguments passed to `hearth` as they are
    #[arg(last = true, value_name = "HEARTH_ARGS")]
    pub extra: Vec<String>,
}

#[path = "fake_supervise.rs"]
mod supervise;

/// One node this kit runs.
struct Planned {
    name: String,
    port: u16,
    home: NodeHome,
}

pub fn run(args: FakeArgs) -> Result<()> {
    let hearth = find_hearth()?;
    // Build before booting: a build error should not leave a node behind.
    for app in &args.apps {
        crate::build::build_package(app)?;
    }
    let nodes = plan(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Children are spawned from this (the main) thread: on Linux their
    // "parent died" signal is tied to the thread that forked them.
    let result = runtime.block_on(supervise::supervise(&hearth, &args, &nodes));
    for node in &nodes {
        forget_run_file(node.port, node.home.path());
    }
    drop(nodes);
    result
}

/// Names, ports and homes of the nodes to start.
fn plan(args: &FakeArgs) -> Result<Vec<Planned>> {
    if args.nodes == 1 {
        let name = args.name.clone().unwrap_or_else(|| "fake.os".into());
        let home = NodeHome::new(args.home.as_deref(), &name)?;
        return Ok(vec![Planned {
            name,
            port: args.port,
            home,
        }]);
    }
    if args.name.is_some() {
        bail!(
            "--name names a single node; --nodes {} names them {}",
            args.nodes,
            MANY_NAMES[..usize::from(args.nodes)].join(", ")
        );
    }
    (0..args.nodes)
        .map(|i| {
            let name = MANY_NAMES[usize::from(i)].to_string();
            let port = match args.port {
                0 => 0,
                first => first
                    .checked_add(u16::from(i))
                    .context("--port leaves no room for the next nodes")?,
            };
            let home = NodeHome::new(args.home.as_ref().map(|h| h.join(&name)).as_deref(), &name)?;
            Ok(Planned { name, port, home })
        })
        .collect()
}

/// A node's child process and the tasks copying its output.
struct Running {
    name: String,
    child: Child,
    output: Vec<JoinHandle<()>>,
}

/// Start `hearth` for one planned node. Its output lines are copied to
/// ours (with `prefix`, behind its name, so several nodes stay readable)
/// and kept in `<home>/`[`NODE_LOG`] for `kit logs`.
fn spawn_node(
    hearth: &Path,
    node: &Planned,
    extra: &[String],
    bootstrap: Option<&str>,
    prefix: bool,
) -> Result<Running> {
    let home = node.home.path();
    // A port file left by an earlier run would say "ready" too early.
    let _ = std::fs::remove_file(home.join(hearth::api::PORT_FILE));
    let mut command = Command::new(hearth);
    command
        .arg("--home")
        .arg(home)
        .args(["--name", &node.name, "--port", &node.port.to_string()])
        .args(bootstrap.iter().flat_map(|addr| ["--bootstrap", addr]))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs between fork and exec and only makes one
    // async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", hearth.display()))?;
    let mut output = Vec::new();
    let label = prefix.then(|| node.name.clone());
    let log = NodeLog::open(home);
    if let Some(out) = child.stdout.take() {
        output.push(tokio::spawn(copy_lines(
            out,
            label.clone(),
            false,
            log.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        output.push(tokio::spawn(copy_lines(err, label, true, log)));
    }
    Ok(Running {
        name: node.name.clone(),
        child,
        output,
    })
}

/// The file in a node's home where `kit f` keeps the node's output.
pub const NODE_LOG: &str = "node.log";

/// Past this size the log moves to `node.log.1` (replacing an older one)
/// and starts again: at most twice this on disk.
const NODE_LOG_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// `<home>/node.log`, shared by the copiers of one node's stdout and
/// stderr. Writing is best effort: a full disk never stops the node.
#[derive(Clone)]
struct NodeLog(Option<std::sync::Arc<std::sync::Mutex<(std::fs::File, u64, PathBuf)>>>);

impl NodeLog {
    fn open(home: &Path) -> Self {
        let path = home.join(NODE_LOG);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path);
        NodeLog(file.ok().map(|file| {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            std::sync::Arc::new(std::sync::Mutex::new((file, size, path)))
        }))
    }

    fn write(&self, line: &str) {
        use std::io::Write;
        let Some(shared) = &self.0 else { return };
        let Ok(mut guard) = shared.lock() else { return };
        let (file, size, path) = &mut *guard;
        if *size > NODE_LOG_MAX_BYTES {
            let _ = std::fs::rename(&*path, path.with_extension("log.1"));
            if let Ok(fresh) = std::fs::File::create(&*path) {
                *file = fresh;
                *size = 0;
            }
        }
        if writeln!(file, "{line}").is_ok() {
            *size += line.len() as u64 + 1;
        }
    }
}

/// Copy `from` line by line to our stdout (or stderr), each line behind
/// `label` if given, and into the node's log.
async fn copy_lines(
    from: impl AsyncRead + Unpin,
    label: Option<String>,
    to_stderr: bool,
    log: NodeLog,
) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match (&label, to_stderr) {
            (Some(name), true) => eprintln!("{name:>9} | {line}"),
            (Some(name), false) => println!("{name:>9} | {line}"),
            (None, true) => eprintln!("{line}"),
            (None, false) => println!("{line}"),
        }
        log.write(&line);
    }
}

/// Wait until the node in `home` has written its HTTP port.
async fn wait_until_up(home: &Path) -> Result<()> {
    let port_file = home.join(hearth::api::PORT_FILE);
    let waited = std::time::Instant::now();
    while !port_file.exists() {
        if waited.elapsed() > STOP_GRACE {
            bail!("the node did not start within {STOP_GRACE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The first node's bootstrap multiaddr, once it is up and listening.
async fn first_bootstrap(home: &Path) -> Result<String> {
    wait_until_up(home).await?;
    let waited = std::time::Instant::now();
    loop {
        let args = NodeArgs {
            port: None,
            home: Some(home.to_path_buf()),
        };
        let status = tokio::task::spawn_blocking(move || -> Result<NodeStatus> {
            let bytes = AdminClient::connect(&args, STOP_GRACE)?.get(STATUS_PATH)?;
            serde_json::from_slice(&bytes).context("the node's status is not JSON")
        })
        .await
        .context("status task")??;
        match status.bootstrap {
            Some(addr) => return Ok(addr),
            // No peer id yet: the network starts after the local services.
            None if waited.elapsed() > STOP_GRACE => {
                bail!("the first node did not listen within {STOP_GRACE:?}")
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Once each node is up, upload each (already built) app to it.
async fn install_apps(apps: &[PathBuf], homes: &[PathBuf]) -> Result<()> {
    if apps.is_empty() {
        return Ok(());
    }
    for home in homes {
        wait_until_up(home).await?;
        for app in apps {
            let args = crate::start::StartArgs {
                dir: app.clone(),
                node: NodeArgs {
                    port: None,
                    home: Some(home.clone()),
                },
            };
            tokio::task::spawn_blocking(move || crate::start::run(&args))
                .await
                .context("upload task")??;
        }
    }
    Ok(())
}

/// SIGTERM to every node, then SIGKILL to those still running after
/// [`STOP_GRACE`] or on the next signal. Returns each node's exit status,
/// once its output is copied out.
async fn stop_all(running: &mut [Running], signals: &mut StopSignals) -> Result<Vec<ExitStatus>> {
    for node in running.iter() {
        if let Some(pid) = node.child.id() {
            // SAFETY: plain system call on the pid of our own, not yet
            // reaped, child.
            if unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) } == -1 {
                eprintln!(
                    "kit: could not signal node {}: {}",
                    node.name,
                    io::Error::last_os_error()
                );
            }
        }
    }
    let all_exit = join_all(running.iter_mut().map(|r| r.child.wait()));
    tokio::select! {
        _ = all_exit => {}
        _ = tokio::time::sleep(STOP_GRACE) => {
            eprintln!("kit: a node did not stop within {STOP_GRACE:?}; killing it");
        }
        _ = signals.recv() => eprintln!("kit: killing"),
    }
    let mut statuses = Vec::with_capacity(running.len());
    for node in running.iter_mut() {
        if node.child.try_wait().ok().flatten().is_none() {
            let _ = node.child.start_kill();
        }
        statuses.push(node.child.wait().await.context("waiting for a node")?);
        for copier in node.output.drain(..) {
            let _ = copier.await;
        }
    }
    Ok(statuses)
}

fn stopped_by_us(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(status.signal(), Some(libc::SIGTERM | libc::SIGKILL))
}

/// The signals that mean "stop the node".
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    fn new() -> Result<Self> {
        let listen = |kind| signal(kind).context("listening for signals");
        Ok(Self {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
            hangup: listen(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "interrupted",
            _ = self.terminate.recv() => "terminated",
            _ = self.hangup.recv() => "hung up",
        }
    }
}

/// The node's home: the user's, or a fresh one removed on drop.
struct NodeHome {
    path: PathBuf,
    throw_away: bool,
}

impl NodeHome {
    fn new(home: Option<&Path>, name: &str) -> Result<Self> {
        if let Some(home) = home {
            std::fs::create_dir_all(home)
                .with_context(|| format!("creating home {}", home.display()))?;
            let path = home
                .canonicalize()
                .with_context(|| format!("resolving {}", home.display()))?;
            return Ok(Self {
                path,
                throw_away: false,
            });
        }
        let path = std::env::temp_dir().join(throw_away_name(name));
        // `create_dir`, not `create_dir_all`: never adopt an existing dir.
        std::fs::create_dir(&path)
            .with_context(|| format!("creating a throw-away home {}", path.display()))?;
        Ok(Self {
            path,
            throw_away: true,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NodeHome {
    fn drop(&mut self) {
        if self.throw_away {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                eprintln!("kit: could not remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Unique per kit process and moment, so parallel `kit f` never share one.
fn throw_away_name(node_name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let safe: String = node_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("hearth-{safe}-{}-{nanos:09}-{n}", std::process::id())
}

/// Removes `~/.hearth/run/<port>` if it still points at `home` (the node
/// normally removes it; a killed one cannot). Other nodes' files are left
/// alone.
fn forget_run_file(port: u16, home: &Path) {
    let Some(user_home) = std::env::var_os("HOME") else {
        return;
    };
    let path = run_file(Path::new(&user_home), port);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if Path::new(text.trim()) == home {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// `hearth` next to kit's own executable, else on `PATH`.
pub(crate) fn find_hearth() -> Result<PathBuf> {
    let name = format!("hearth{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)));
    if let Some(path) = beside.filter(|p| p.is_file()) {
        return Ok(path);
    }
    if let Some(path) = find_on_path(&name, std::env::var_os("PATH").as_deref()) {
        return Ok(path);
    }
    bail!(
        "cannot find the `hearth` binary next to kit or on PATH; build it with \
         `cargo build --release -p hearth`"
    )
}

fn find_on_path(name: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::TempDir;

    #[test]
    fn finds_binary_on_path() {
        let tmp = TempDir::new("path");
        let bin = tmp.0.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("hearth"), "").unwrap();
        let path_var = std::env::join_paths([tmp.0.join("empty"), bin.clone()]).unwrap();
        assert_eq!(
            find_on_path("hearth", Some(&path_var)),
            Some(bin.join("hearth"))
        );
        assert_eq!(find_on_path("nope", Some(&path_var)), None);
        assert_eq!(find_on_path("hearth", None), None);
    }

    #[test]
    fn throw_away_homes_are_distinct_and_removed() {
        let a = NodeHome::new(None, "fake.os").unwrap();
        let b = NodeHome::new(None, "fake.os").unwrap();
        assert_ne!(a.path(), b.path());
        let a_path = a.path().to_path_buf();
        assert!(a_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("hearth-fake_os-"));
        drop(a);
        assert!(!a_path.exists());
        assert!(b.path().exists());
    }

    #[test]
    fn given_home_is_kept() {
        let tmp = TempDir::new("kept");
        let dir = tmp.0.join("home");
        drop(NodeHome::new(Some(&dir), "x").unwrap());
        assert!(dir.is_dir());
    }
}
