//! The nodes of one `kit t` test: real `hearth` processes on throw-away
//! homes, HTTP on port 0, peers on loopback without mDNS (each node after
//! the first bootstraps from it), their output kept per node for the
//! failure report.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hearth::api::{NodeStatus, PeerInfo, PEERS_PATH, PORT_FILE, STATUS_PATH};

use crate::admin::{AdminClient, NodeArgs};

/// Log lines kept per node (the newest): enough to see what led to a
/// failure, bounded however chatty a node is.
const LOG_LINES: usize = 400;

/// Longest log line kept, in bytes; the rest is cut.
const LOG_LINE_BYTES: usize = 2048;

/// How long a node gets to come up, or to see its peers; generous for a
/// loaded 2-core machine.
pub const UP_DEADLINE: Duration = Duration::from_secs(60);

/// How long a stopping node gets before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Deadline of one admin call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Log = Arc<Mutex<VecDeque<String>>>;

/// One node of the test.
pub struct TestNode {
    pub name: String,
    home: PathBuf,
    child: Option<Child>,
    log: Log,
}

/// Every node of one test; dropping it stops them and removes their homes.
pub struct TestNet {
    hearth: PathBuf,
    root: PathBuf,
    pub nodes: Vec<TestNode>,
    bootstrap: Option<String>,
}

impl TestNet {
    /// Boots `names` in order and waits until every node sees the others.
    pub fn start(hearth: &Path, names: &[String]) -> Result<Self> {
        let root = scratch_dir()?;
        let mut net = Self {
            hearth: hearth.to_path_buf(),
            root,
            nodes: Vec::with_capacity(names.len()),
            bootstrap: None,
        };
        for name in names {
            let home = net.root.join(name);
            std::fs::create_dir_all(&home)
                .with_context(|| format!("creating {}", home.display()))?;
            net.nodes.push(TestNode {
                name: name.clone(),
                home,
                child: None,
                log: Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES))),
            });
            let i = net.nodes.len() - 1;
            net.boot(i)?;
            if i == 0 && names.len() > 1 {
                net.bootstrap = Some(net.nodes[0].bootstrap_addr()?);
            }
        }
        net.wait_for_peers()?;
        Ok(net)
    }

    pub fn node(&self, name: &str) -> Result<&TestNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no node {name}"))
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .with_context(|| format!("no node {name}"))
    }

    /// Starts node `i` and waits until it serves its admin API.
    fn boot(&mut self, i: usize) -> Result<()> {
        let bootstrap = self.bootstrap.clone().filter(|_| i > 0);
        let node = &mut self.nodes[i];
        let _ = std::fs::remove_file(node.home.join(PORT_FILE));
        let mut command = Command::new(&self.hearth);
        command
            .arg("--home")
            .arg(&node.home)
            .args(["--name", &node.name, "--port", "0"])
            .args(["--no-mdns", "--p2p-bind", "127.0.0.1"])
            .args(bootstrap.iter().flat_map(|addr| ["--bootstrap", addr]))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_kit(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.hearth.display()))?;
        if let Some(out) = child.stdout.take() {
            keep_lines(out, node.log.clone());
        }
        if let Some(err) = child.stderr.take() {
            keep_lines(err, node.log.clone());
        }
        node.child = Some(child);
        node.wait_up()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let i = self.index(name)?;
        let Some(mut child) = self.nodes[i].child.take() else {
            bail!("{name} is not running");
        };
        let _ = child.kill();
        child.wait().context("waiting for the killed node")?;
        Ok(())
    }

    /// Boots a node again on its home (stopping it first if it runs) and
    /// waits until it sees the others again.
    pub fn restart(&mut self, name: &str) -> Result<()> {
        let i = self.index(name)?;
        if let Some(child) = self.nodes[i].child.take() {
            stop(vec![child]);
        }
        self.boot(i)?;
        if i == 0 && self.nodes.len() > 1 {
            // Its peer port changed: later restarts bootstrap from the new one.
            self.bootstrap = Some(self.nodes[0].bootstrap_addr()?);
        }
        self.wait_for_peers()
    }

    /// Until every running node has every other running node as a named
    /// peer (a node only talks to a name once that peer said hello).
    pub fn wait_for_peers(&self) -> Result<()> {
        let running: Vec<&TestNode> = self.nodes.iter().filter(|n| n.child.is_some()).collect();
        let started = Instant::now();
        for node in &running {
            let others: Vec<&str> = running
                .iter()
                .filter(|o| o.name != node.name)
                .map(|o| o.name.as_str())
                .collect();
            loop {
                let peers = node.peers()?;
                let missing: Vec<&str> = others
                    .iter()
                    .copied()
                    .filter(|o| !peers.iter().any(|p| p.name.as_deref() == Some(*o)))
                    .collect();
                if missing.is_empty() {
                    break;
                }
                if started.elapsed() > UP_DEADLINE {
                    bail!(
                        "{} did not see {} within {UP_DEADLINE:?}",
                        node.name,
                        missing.join(", ")
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        Ok(())
    }

    /// Every node's kept log lines, each behind its node's name.
    pub fn logs(&self) -> Vec<String> {
        let width = self.nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
        let mut lines = Vec::new();
        for node in &self.nodes {
            let log = node.log.lock().map(|l| l.clone()).unwrap_or_default();
            if log.is_empty() {
                lines.push(format!("{:>width$} | (no output)", node.name));
            }
            lines.extend(
                log.iter()
                    .map(|line| format!("{:>width$} | {line}", node.name)),
            );
        }
        lines
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let children = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.child.take())
            .collect();
        stop(children);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl TestNode {
    pub fn client(&self) -> Result<AdminClient> {
        self.client_with(CALL_TIMEOUT)
    }

    /// A client whose calls may take up to `timeout`.
    pub fn client_with(&self, timeout: Duration) -> Result<AdminClient> {
        let args = NodeArgs {
            port: None,
            home: Some(self.home.clone()),
        };
        AdminClient::connect(&args, timeout)
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    fn wait_up(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    bail!("{} exited at boot ({status})", self.name);
                }
            }
            if self.home.join(PORT_FILE).is_file() {
                if let Ok(client) = self.client() {
                    if client.get(STATUS_PATH).is_ok() {
                        return Ok(());
                    }
                }
            }
            if started.elapsed() > UP_DEADLINE {
                bail!("{} did not come up within {UP_DEADLINE:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn bootstrap_addr(&self) -> Result<String> {
        let started = Instant::now();
        loop {
            let bytes = self.client()?.get(STATUS_PATH)?;
            let status: NodeStatus =
                serde_json::from_slice(&bytes).context("the node's status is not JSON")?;
            if let Some(addr) = status.bootstrap {
                return Ok(addr);
            }
            // No peer id yet: the network starts after the local services.
            if started.elapsed() > UP_DEADLINE {
                bail!(
                    "{} did not listen for peers within {UP_DEADLINE:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn peers(&self) -> Result<Vec<PeerInfo>> {
        let bytes = self.client()?.get(PEERS_PATH)?;
        serde_json::from_slice(&bytes).context("the node's peers are not JSON")
    }
}

/// SIGTERM to all, then SIGKILL to those still running after the grace.
fn stop(mut children: Vec<Child>) {
    for child in &children {
        // SAFETY: a plain system call on the pid of our own, unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    let started = Instant::now();
    while started.elapsed() < STOP_GRACE {
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
        if children.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// On Linux, the node gets SIGKILL if kit dies without stopping it.
fn die_with_kit(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs between fork and exec and only makes one
        // async-signal-safe system call.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Copies `from`'s lines into `log` on a thread, keeping the newest.
fn keep_lines(from: impl Read + Send + 'static, log: Log) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            // A longer line is cut into pieces: memory stays bounded.
            let mut piece = (&mut reader).take(LOG_LINE_BYTES as u64);
            match piece.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            let Ok(mut log) = log.lock() else { return };
            if log.len() == LOG_LINES {
                log.pop_front();
            }
            log.push_back(text);
        }
    });
}

/// A fresh directory for the test's homes.
fn scratch_dir() -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kit-t-{}-{n}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
