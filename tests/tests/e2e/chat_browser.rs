//! The chat across two real `hearth` nodes (alice.os and bob.os, child
//! processes on fixed loopback ports) and two headless Chromiums, one per
//! node, driven by `tests/ui/chat.mjs` (playwright-core): rooms,
//! invitations, live messages both ways, replies, edits, deletes,
//! reactions, mentions, an image attachment, presence, history paging,
//! refusals (a rate limit's wait counting down), late answers (a
//! reaction's and a discarded send's, held back in the browser), bob
//! SIGKILLed while alice sends, alice stopped while bob sends. The script asks this test to kill, stop and start nodes (`DO
//! ...` lines, answered on its stdin), takes the README's screenshots
//! and prints browser-to-browser latency.
//!
//! The screenshots go to `target/ui-shots/chat/`, leaving the checkout
//! as it was; with `HEARTH_UPDATE_SCREENSHOTS=1` they replace the README's
//! in `apps/chat/screenshots/` (commit them after looking at them).
//!
//! Fails (never skips) when Chromium or the npm packages are missing:
//! `.ci/setup` installs both.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth::api::{
    PackageFile, PackageUpload, INSTALL_PATH, SECRET_FILE, SECRET_HEADER, STATUS_PATH,
};
use serde_json::Value;

use crate::common::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const PASSWORD: &str = "hearth demo";
/// How long the whole browser script may take: it waits out the chat's
/// 30-messages-a-minute rule while it fills a room's history.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(900);
/// How long a node may take to boot and answer HTTP on a loaded machine.
const BOOT_DEADLINE: Duration = Duration::from_secs(60);

/// One node as a child process, restartable on the same ports and home.
struct ChatNode {
    name: &'static str,
    home: PathBuf,
    user_home: PathBuf,
    port: u16,
    p2p_port: u16,
    bootstrap: Option<String>,
    child: Option<Child>,
}

impl ChatNode {
    fn new(dir: &Path, name: &'static str) -> Self {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).expect("node home");
        std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).expect("password file");
        Self {
            name,
            user_home: dir.join("user"),
            home,
            port: free_port(),
            p2p_port: free_port(),
            bootstrap: None,
            child: None,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Start `hearth` and wait until its HTTP server answers.
    fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let password = self.home.parent().expect("dir").join("password");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("hearth.log"))
            .expect("log file");
        let mut cmd = Command::new(binaries().join("hearth"));
        cmd.env("HOME", &self.user_home)
            .args(["--name", self.name, "--home"])
            .arg(&self.home)
            .args(["--port", &self.port.to_string()])
            .args(["--p2p-port", &self.p2p_port.to_string()])
            .args(["--p2p-bind", "127.0.0.1", "--no-mdns", "--password-file"])
            .arg(&password)
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(b) = &self.bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        self.child = Some(cmd.spawn().expect("start hearth"));
        let t = Instant::now();
        let login = format!("{}/login", self.base());
        while ureq::get(&login).call().is_err() {
            assert!(
                t.elapsed() < BOOT_DEADLINE,
                "{} did not boot:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, no goodbye.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the node to drain and exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let t = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if t.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("hearth.log")).unwrap_or_default()
    }

    /// The TCP address other nodes bootstrap from.
    fn bootstrap_addr(&self) -> String {
        let t = Instant::now();
        loop {
            let secret =
                std::fs::read_to_string(self.home.join(SECRET_FILE)).expect("admin secret");
            let (_, _, body) = super::http::call(
                "GET",
                &format!("{}{STATUS_PATH}", self.base()),
                &[(SECRET_HEADER, secret.trim())],
                b"",
            );
            let status: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if let Some(addr) = status["bootstrap"].as_str() {
                return addr.to_string();
            }
            assert!(t.elapsed() < BOOT_DEADLINE, "{} has no address", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn install(&self, files: Vec<PackageFile>) {
        let secret = std::fs::read_to_string(self.home.join(SECRET_FILE)).expect("admin secret");
        let body =
            bincode::serde::encode_to_vec(PackageUpload { files }, bincode::config::standard())
                .expect("encode upload");
        ureq::post(&format!("{}{INSTALL_PATH}", self.base()))
            .header(SECRET_HEADER, secret.trim())
            .send(&body[..])
            .unwrap_or_else(|e| panic!("install chat on {}: {e}\n{}", self.name, self.log()));
    }
}

impl Drop for ChatNode {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn two_nodes_chat_in_two_headless_chromiums() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run .ci/setup (apt-get install chromium)"
    );
    let ui_dir = workspace_root().join("tests/ui");
    assert!(
        ui_dir.join("node_modules/playwright-core").is_dir(),
        "tests/ui/node_modules is missing: run .ci/setup (npm ci in tests/ui)"
    );
    let files = super::http::chat_package();
    let dir = TempDir::new("chat-browser");
    let mut alice = ChatNode::new(dir.path(), "alice.os");
    let mut bob = ChatNode::new(dir.path(), "bob.os");
    alice.start();
    alice.install(files.clone());
    bob.bootstrap = Some(alice.bootstrap_addr());
    bob.start();
    bob.install(files);

    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).expect("the screenshots' folder");
    eprintln!("screenshots in {}", shots.display());
    let mut child = Command::new("node")
        .current_dir(&ui_dir)
        .arg("chat.mjs")
        .args([&alice.base(), &bob.base(), PASSWORD])
        .arg(&shots)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (Node.js) for the browser script");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (line_tx, line_rx) = std::sync::mpsc::sync_channel::<String>(16);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut report = None;
    loop {
        let left = SCRIPT_DEADLINE.saturating_sub(started.elapsed());
        let line = match line_rx.recv_timeout(left) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("the browser script did not finish within {SCRIPT_DEADLINE:?}");
            }
        };
        if let Some(what) = line.strip_prefix("DO ") {
            let (verb, name) = what.split_once(' ').expect("DO verb node");
            let node = match name {
                "alice.os" => &mut alice,
                "bob.os" => &mut bob,
                other => panic!("no node {other}"),
            };
            match verb {
                "kill" => node.kill(),
                "stop" => node.stop(),
                "start" => node.start(),
                other => panic!("no action {other}"),
            }
            eprintln!("[{:>5.1}s] {verb} {name}", started.elapsed().as_secs_f64());
            writeln!(stdin, "done").expect("write to the script");
        } else if line.starts_with('{') {
            report = Some(line);
        } else {
            eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
        }
    }
    let output = child.wait_with_output().expect("script ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = report.unwrap_or_default();
    let context = format!(
        "{stderr}\n--- alice\n{}\n--- bob\n{}",
        tail(&alice.log()),
        tail(&bob.log())
    );
    let report = browser_report(&report, output.status.success(), EXPECTED, &context);
    if let Some(latency) = report.get("latency") {
        eprintln!("browser-to-browser message latency across nodes: {latency}");
    }
}

/// Set to `1` to write the screenshots over the README's.
const UPDATE_SCREENSHOTS: &str = "HEARTH_UPDATE_SCREENSHOTS";

/// Where the script saves its screenshots: the README's folder only when
/// asked, else under `target/`.
fn screenshots_dir() -> PathBuf {
    let root = workspace_root();
    if std::env::var(UPDATE_SCREENSHOTS).is_ok_and(|v| v == "1") {
        root.join("apps/chat/screenshots")
    } else {
        root.join("target/ui-shots/chat")
    }
}

/// Every check the script must have run.
const EXPECTED: &[&str] = &[
    "alice creates a room",
    "bob sees the invitation live",
    "bob joins from his page",
    "alice's message shown live on bob's page",
    "bob's message shown live on alice's page",
    "mention highlighted on bob's page",
    "reply shown inline on alice's page",
    "edit shown on bob's page",
    "delete shown on bob's page",
    "reaction shown on alice's page",
    "a late older copy never replaces newer reactions",
    "typing indicator shown on alice's page",
    "image from bob previewed on alice's page",
    "the newest message stays in view at phone width",
    "direct message shown in alice's sidebar with an unread badge",
    "empty message refused in the UI",
    "too-long message refused in the UI",
    "rate limit shown in the UI",
    "rate limit said once: one failed message, the box empty",
    "the rate limit's wait counts down as it sits",
    "a failed message discarded from the list, on both of bob's pages",
    "a late copy of a discarded message does not bring it back",
    "\"try again now\" once the wait is over, and Retry then sends it",
    "history paged back to the first message",
    "presence: bob offline on alice's page after his page closed",
    "presence: bob online again",
    "bob killed: all 20 shown once, in order, after restart",
    "alice stopped: bob's 5 marked pending",
    "alice restarted: bob's 5 delivered in order",
    "latency measured",
];

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
