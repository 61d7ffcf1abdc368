//! `kit f`: run a development node in the foreground.
//!
//! Runs the `hearth` binary with its own home (a throw-away directory unless
//! `--home` is given), name and port, with its output going straight to the
//! terminal. Ctrl-C, SIGTERM or SIGHUP stop it gracefully (SIGTERM, then
//! SIGKILL after [`STOP_GRACE`] or on a second signal) and remove the
//! throw-away home.
//!
//! Each `kit f` owns exactly one child and shares nothing with other `kit f`
//! runs: no common helper process, directory or port. The child runs in its
//! own process group so that only this kit decides when it stops, and on
//! Linux it is told to stop if this kit dies without cleaning up.
//!
//! Unix only (signals and process groups).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::admin::{run_file, DEFAULT_PORT};

/// How long a stopping node gets to drain before it is killed. Enough for
/// processes to save state and peers to be told goodbye; short enough that a
/// stuck node does not hold the terminal.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct FakeArgs {
    /// Node name
    #[arg(short, long, default_value = "fake.os")]
    pub name: String,
    /// HTTP port (0 lets the node pick one)
    #[arg(short, long, env = "HEARTH_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Keep the node's data in DIR [default: a throw-away directory]
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Build this package and start it on the node once it is up
    /// (repeatable)
    #[arg(long = "app", value_name = "DIR")]
    pub apps: Vec<PathBuf>,
    /// Extra arguments passed to `hearth` as they are
    #[arg(last = true, value_name = "HEARTH_ARGS")]
    pub extra: Vec<String>,
}

pub fn run(args: FakeArgs) -> Result<()> {
    let hearth = find_hearth()?;
    // Build before booting: a build error should not leave a node behind.
    for app in &args.apps {
        crate::build::build_package(app)?;
    }
    let home = NodeHome::new(args.home.as_deref(), &args.name)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The child is spawned from this (the main) thread: on Linux its
    // "parent died" signal is tied to the thread that forked it.
    let result = runtime.block_on(supervise(&hearth, &args, home.path()));
    forget_run_file(args.port, home.path());
    drop(home);
    result
}

async fn supervise(hearth: &Path, args: &FakeArgs, home: &Path) -> Result<()> {
    let mut signals = StopSignals::new()?;
    // A port file left by an earlier run would say "ready" too early.
    let _ = std::fs::remove_file(home.join(hearth::api::PORT_FILE));
    let mut command = Command::new(hearth);
    command
        .arg("--home")
        .arg(home)
        .args(["--name", &args.name, "--port", &args.port.to_string()])
        .args(&args.extra)
        .stdin(Stdio::null())
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
    eprintln!(
        "kit: node {} on port {}, home {} (Ctrl-C stops it)",
        args.name,
        args.port,
        home.display()
    );
    let install = install_apps(&args.apps, home);
    tokio::pin!(install);
    let mut installing = !args.apps.is_empty();
    let status = loop {
        tokio::select! {
            result = &mut install, if installing => {
                installing = false;
                if let Err(e) = result {
                    eprintln!("kit: starting the apps failed: {e:#}");
                }
            }
            status = child.wait() => break status.context("waiting for the node")?,
            name = signals.recv() => {
                eprintln!("kit: {name}: stopping node {} (again to kill it)", args.name);
                break stop(&mut child, &mut signals).await?;
            }
        }
    };
    if status.success() || stopped_by_us(status) {
        eprintln!("kit: node {} stopped", args.name);
        Ok(())
    } else {
        bail!("node {} exited with {status}", args.name)
    }
}

/// Once the node has written its port, upload each (already built) app.
async fn install_apps(apps: &[PathBuf], home: &Path) -> Result<()> {
    if apps.is_empty() {
        return Ok(());
    }
    let port_file = home.join(hearth::api::PORT_FILE);
    let waited = std::time::Instant::now();
    while !port_file.exists() {
        if waited.elapsed() > STOP_GRACE {
            bail!("the node did not start within {STOP_GRACE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for app in apps {
        let args = crate::start::StartArgs {
            dir: app.clone(),
            node: crate::admin::NodeArgs {
                port: None,
                home: Some(home.to_path_buf()),
            },
        };
        tokio::task::spawn_blocking(move || crate::start::run(&args))
            .await
            .context("upload task")??;
    }
    Ok(())
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`] or on the next signal.
async fn stop(child: &mut Child, signals: &mut StopSignals) -> Result<ExitStatus> {
    if let Some(pid) = child.id() {
        // SAFETY: plain system call on the pid of our own, not yet reaped, child.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) } == -1 {
            eprintln!(
                "kit: could not signal the node: {}",
                io::Error::last_os_error()
            );
        }
    }
    tokio::select! {
        status = child.wait() => return status.context("waiting for the node"),
        _ = tokio::time::sleep(STOP_GRACE) => {
            eprintln!("kit: the node did not stop within {STOP_GRACE:?}; killing it");
        }
        _ = signals.recv() => eprintln!("kit: killing the node"),
    }
    child.kill().await.context("killing the node")?;
    child.wait().await.context("waiting for the node")
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
fn find_hearth() -> Result<PathBuf> {
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
