//! The developer loop through the real `kit` and `hearth` binaries, as a
//! newcomer meets it: `kit new` and its printed next steps from a directory
//! outside the checkout, `kit t` passing and failing, exit codes, `kit f
//! --nodes 2` surviving the death of one node, and errors that say what
//! is wrong.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// `kit` with `HOME` (so `~/.hearth` is the test's) and the shared target
/// dir (a cache only: nothing in the project points at it).
pub(crate) fn kit_command(user_home: &Path) -> Command {
    let mut command = Command::new(binaries().join("kit"));
    command
        .env("HOME", user_home)
        .env("CARGO_TARGET_DIR", workspace_root().join("target"))
        .env_remove("HEARTH_PORT")
        .env_remove("HEARTH_HOME");
    command
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Output lines of a child, collected by a thread as they come.
#[derive(Clone, Default)]
pub(crate) struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub(crate) fn follow(&self, from: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(line);
            }
        });
    }

    pub(crate) fn all(&self) -> String {
        self.0.lock().expect("lines").join("\n")
    }

    /// Waits until some line contains `needle`.
    pub(crate) fn wait_for(&self, needle: &str, deadline: Duration) {
        let t = Instant::now();
        while !self.all().contains(needle) {
            assert!(
                t.elapsed() < deadline,
                "no line with {needle:?} within {deadline:?}:\n{}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A `kit f` in the background, stopped with SIGINT (then SIGKILL) on drop.
pub(crate) struct KitF {
    pub(crate) child: Child,
    pub(crate) lines: Lines,
}

impl KitF {
    pub(crate) fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kit f");
        let lines = Lines::default();
        lines.follow(child.stdout.take().expect("stdout"));
        lines.follow(child.stderr.take().expect("stderr"));
        Self { child, lines }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to kit f");
        stdin.flush().expect("flush");
    }
}

impl Drop for KitF {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir`, recursively, skipping `target/`.
pub(crate) fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("list").map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                files_under(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Fails if any file under `dirs` names the checkout kit was built from.
pub(crate) fn assert_no_checkout_path(dirs: &[&Path]) {
    let checkout_text = workspace_root().to_string_lossy().to_string();
    let mut files = Vec::new();
    for dir in dirs {
        files_under(dir, &mut files);
    }
    for file in &files {
        let contents = std::fs::read_to_string(file).unwrap_or_default();
        assert!(
            !contents.contains(&checkout_text),
            "{} names the checkout {checkout_text}",
            file.display()
        );
    }
}

/// The steps `kit new` printed under `next:`, their comments dropped.
pub(crate) fn next_steps(printed: &str) -> Vec<String> {
    printed
        .lines()
        .skip_while(|l| l.trim() != "next:")
        .skip(1)
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A shell running printed steps as a newcomer would: in `cwd`, with the
/// test's `HOME`, the built binaries first on `PATH` and the node's port.
pub(crate) struct StepShell {
    pub(crate) cwd: PathBuf,
    pub(crate) user_home: PathBuf,
    pub(crate) port: String,
    /// `HEARTH_SDK_DIR`, when the test shares one SDK between projects.
    pub(crate) sdk_dir: Option<PathBuf>,
}

impl StepShell {
    pub(crate) fn command(&self, line: &str) -> Command {
        let path_var = format!(
            "{}:{}",
            binaries().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut sh = Command::new("sh");
        sh.current_dir(&self.cwd)
            .env("HOME", &self.user_home)
            .env("CARGO_TARGET_DIR", workspace_root().join("target"))
            .env("PATH", path_var)
            .env("HEARTH_PORT", &self.port)
            .env_remove("HEARTH_HOME")
            .args(["-c", line]);
        if let Some(sdk) = &self.sdk_dir {
            sh.env("HEARTH_SDK_DIR", sdk);
        }
        sh
    }

    /// Run `steps` in order, each succeeding: a `kit f` step in the
    /// background ("in another terminal") until its node is up within
    /// `boot`, every other step to its end. Returns the node and each other
    /// step with its output; `label` starts a failure's message.
    pub(crate) fn run(
        &self,
        steps: &[String],
        boot: Duration,
        label: &str,
    ) -> (Option<KitF>, Vec<(String, Output)>) {
        let mut node = None;
        let mut ran = Vec::new();
        for step in steps {
            if step.starts_with("kit f") {
                // `exec`: the signal that stops it reaches kit, not a shell.
                let fake = KitF::spawn(self.command(&format!("exec {step}")));
                fake.lines.wait_for("kit: node fake.os on port", boot);
                let run_file = self.user_home.join(".hearth/run").join(&self.port);
                let t = Instant::now();
                while !run_file.is_file() {
                    assert!(t.elapsed() < boot, "{}", fake.lines.all());
                    std::thread::sleep(Duration::from_millis(50));
                }
                node = Some(fake);
                continue;
            }
            let out = self.command(step).output().expect("run a step");
            assert!(
                out.status.success(),
                "{label}the printed step `{step}` failed:\n{}",
                text(&out)
            );
            ran.push((step.clone(), out));
        }
        (node, ran)
    }
}

/// `kit new`, then the next steps exactly as it printed them, run by a
/// shell from a directory outside the checkout; then `kit t` on the new
/// project passes, and a broken expectation fails with the step, expected
/// and got, and each node's log lines labelled by node.
#[test]
fn kit_new_next_steps_then_kit_t_outside_the_checkout() {
    let user_home = TempDir::new("dev-user");
    let outside = TempDir::new("dev-outside");
    let port = free_port().to_string();
    let checkout = workspace_root();
    assert!(!outside.path().starts_with(&checkout));

    let out = kit_command(user_home.path())
        .current_dir(outside.path())
        .args(["new", "my-app"])
        .output()
        .expect("kit new");
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();

    // Nothing in the project, nor in the SDK it builds against, names the
    // checkout kit was built from.
    let project = outside.path().join("my-app");
    assert_no_checkout_path(&[&project, &user_home.path().join(".hearth/sdk")]);
    let manifest = std::fs::read_to_string(project.join("my-app/Cargo.toml")).expect("manifest");
    assert!(
        manifest.contains(".hearth/sdk/") && manifest.contains("version = \"=0.1.0\""),
        "{manifest}"
    );

    // The printed steps, in order: `cd`, then `kit f` "in another
    // terminal" (here: in the background), `kit bs`, `kit i`.
    let steps = next_steps(&printed);
    assert!(steps.len() >= 4, "next steps: {printed}");
    let cd = steps[0].strip_prefix("cd ").expect("first step is cd");
    let shell = StepShell {
        cwd: outside.path().join(cd),
        user_home: user_home.path().to_path_buf(),
        port,
        sdk_dir: None,
    };
    let (fake, ran) = shell.run(&steps[1..], Duration::from_secs(30), "");
    let (_, last) = ran
        .into_iter()
        .rev()
        .find(|(step, _)| step.starts_with("kit i "))
        .expect("a kit i step");
    let answer: Value =
        serde_json::from_slice(&last.stdout).unwrap_or_else(|_| panic!("{}", text(&last)));
    assert_eq!(answer, json!({"ok": "world"}));

    // An app's typed error exits 2, its JSON still on stdout.
    let out = shell
        .command("kit i my-app:my-app:sys '{\"my_app\": \"not an object\"}'")
        .output()
        .expect("kit i");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"error\""));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad-request"));
    drop(fake);

    // The generated test passes.
    let out = kit_command(user_home.path())
        .current_dir(&project)
        .args(["t"])
        .output()
        .expect("kit t");
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("PASS answers across two nodes"), "{said}");
    assert!(said.contains("1 passed, 0 failed"), "{said}");

    // A broken expectation: the failing step, expected and got, and each
    // node's log lines behind its name.
    let tests = std::fs::read_to_string(project.join("tests.toml")).expect("tests.toml");
    let broken = tests.replace("expect = { ok = \"hi\" }", "expect = { ok = \"bye\" }");
    assert_ne!(broken, tests);
    std::fs::write(project.join("tests.toml"), broken).expect("write tests.toml");
    let out = kit_command(user_home.path())
        .current_dir(&project)
        .args(["t", "--no-build"])
        .output()
        .expect("kit t");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAIL 2. inject"), "{said}");
    assert!(
        said.contains("expected: an answer containing {\"ok\":\"bye\"}"),
        "{said}"
    );
    assert!(said.contains("got:      {\"ok\":\"hi\"}"), "{said}");
    assert!(
        said.contains("alice.os | ") && said.contains("  bob.os | "),
        "{said}"
    );
    assert!(
        said.contains("FAIL answers across two nodes at step 2 of 3"),
        "{said}"
    );
}

/// The HTTP port a node in `home` wrote, once it is up (another than
/// `old`, when given).
fn port_in(home: &Path, old: Option<&str>) -> String {
    let t = Instant::now();
    loop {
        if let Ok(port) = std::fs::read_to_string(home.join(hearth::api::PORT_FILE)) {
            let port = port.trim().to_string();
            if !port.is_empty() && Some(port.as_str()) != old {
                return port;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{} not up",
            home.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kit i` through the real binary, retried until it answers `want`.
fn answers(user_home: &Path, port: &str, want: &Value) {
    let t = Instant::now();
    loop {
        let out = kit_command(user_home)
            .args(["i", "echo:echo:sys", &want.to_string(), "--port", port])
            .output()
            .expect("kit i");
        if out.status.success() {
            assert_eq!(
                serde_json::from_slice::<Value>(&out.stdout).ok().as_ref(),
                Some(want)
            );
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{}", text(&out));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kit f --nodes 2`: killing bob is reported, alice keeps answering, and
/// `r` + Enter brings bob back on his home, answering again. `kit peers`
/// has a header and one line per peer.
#[test]
fn kit_f_one_node_dies_the_other_keeps_answering() {
    let user_home = TempDir::new("decouple-user");
    let homes = TempDir::new("decouple-homes");
    // The echo package, already built by the harness, laid out for `kit s`.
    let echo = TempDir::new("decouple-echo");
    for f in echo_package() {
        let path = echo.path().join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("package dir");
        std::fs::write(path, f.bytes).expect("package file");
    }
    let mut command = kit_command(user_home.path());
    command
        .args(["f", "--nodes", "2", "--port", "0", "--home"])
        .arg(homes.path())
        .args(["--", "--no-mdns"]);
    let mut fake = KitF::spawn(command);
    let alice_home = homes.path().join("alice.os");
    let bob_home = homes.path().join("bob.os");
    let alice = port_in(&alice_home, None);
    let bob = port_in(&bob_home, None);
    for port in [&alice, &bob] {
        let out = kit_command(user_home.path())
            .arg("s")
            .arg(echo.path())
            .args(["--port", port])
            .output()
            .expect("kit s");
        assert!(
            out.status.success(),
            "{}
{}",
            text(&out),
            fake.lines.all()
        );
    }
    answers(user_home.path(), &alice, &json!({"to": "alice"}));
    answers(user_home.path(), &bob, &json!({"to": "bob"}));

    let out = kit_command(user_home.path())
        .args(["peers", "--port", &alice])
        .output()
        .expect("kit peers");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("PEER ID"),
        "{said}"
    );
    assert_eq!(lines.len(), 2, "one line per peer: {said}");
    assert!(lines[1].starts_with("bob.os"), "{said}");

    // The node writes its PID; kill -9 bob as a crash would.
    let pid = std::fs::read_to_string(bob_home.join("node.pid")).expect("bob's node.pid");
    let killed = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success());
    fake.lines.wait_for(
        "node bob.os exited (signal: 9 (SIGKILL)); the others keep running",
        Duration::from_secs(30),
    );
    answers(user_home.path(), &alice, &json!({"still": "alice"}));
    assert_eq!(fake.child.try_wait().expect("kit f"), None, "kit f ended");

    fake.type_line("r");
    fake.lines
        .wait_for("node bob.os restarted", Duration::from_secs(30));
    let bob_again = port_in(&bob_home, None);
    answers(user_home.path(), &bob_again, &json!({"back": "bob"}));
    answers(user_home.path(), &alice, &json!({"and": "alice"}));
}

/// A second node on a home in use is told which process holds it; `kit bs`
/// with no node says so before building anything.
#[test]
fn errors_say_what_is_wrong() {
    let user_home = TempDir::new("errors-user");
    let node_home = TempDir::new("errors-node");
    let node = HearthProcess::start(node_home.path(), user_home.path(), "first.os", &[]);
    let out = Command::new(binaries().join("hearth"))
        .env("HOME", user_home.path())
        .args(["--name", "second.os", "--port", "0", "--home"])
        .arg(node_home.path())
        .output()
        .expect("second hearth");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    let holder = format!("in use by PID {}", node.child.id());
    assert!(said.contains(&holder), "{said}");
    assert!(!said.contains("corrupt"), "{said}");

    let port = free_port().to_string();
    let started = Instant::now();
    let out = kit_command(user_home.path())
        .args(["bs"])
        .arg(workspace_root().join("apps/echo"))
        .args(["--port", &port])
        .output()
        .expect("kit bs");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("no node is running on port {port}")),
        "{said}"
    );
    assert!(!said.contains("building"), "built before asking: {said}");
    assert!(started.elapsed() < Duration::from_secs(10), "{said}");
}

/// The counter app `kit watch` is tried on: state saved on change.
const COUNTER: &str = r#"use hearth_sdk::app;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    count: u64,
}

#[app(persist = "on_change")]
impl Counter {
    #[local]
    fn bump(&mut self) -> u64 {
        self.count += 1;
        self.count
    }
}
"#;

/// `kit watch`: a saved edit is rebuilt and reinstalled, the new code
/// answers and the state carried on; a broken edit leaves the running
/// version answering.
#[test]
fn kit_watch_reinstalls_on_save_and_keeps_state() {
    let user_home = TempDir::new("watch-user");
    let node_home = TempDir::new("watch-node");
    let outside = TempDir::new("watch-outside");
    let node = HearthProcess::start(node_home.path(), user_home.path(), "watch.os", &[]);
    let port = node.port.to_string();
    let out = kit_command(user_home.path())
        .current_dir(outside.path())
        .args(["new", "counter"])
        .output()
        .expect("kit new");
    assert!(out.status.success(), "{}", text(&out));
    let project = outside.path().join("counter");
    let source = project.join("counter/src/lib.rs");
    std::fs::write(&source, COUNTER).expect("write the counter");
    let manifest_path = project.join("counter/Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).expect("manifest");
    let manifest = manifest.replace(
        "[dependencies]\n",
        "[dependencies]\nserde = { version = \"1\", features = [\"derive\"] }\n",
    );
    std::fs::write(&manifest_path, manifest).expect("write manifest");

    let mut command = kit_command(user_home.path());
    command
        .current_dir(&project)
        .args(["watch", "--port", &port]);
    let watch = KitF::spawn(command);
    // The first build compiles the SDK: generous on a loaded machine.
    let build_deadline = Duration::from_secs(900);
    watch.lines.wait_for("kit watch: running (", build_deadline);
    let bump = || -> Value {
        let out = kit_command(user_home.path())
            .args([
                "i",
                "counter:counter:sys",
                r#"{"bump": {}}"#,
                "--port",
                &port,
            ])
            .output()
            .expect("kit i");
        assert!(
            out.status.success(),
            "{}\n{}",
            text(&out),
            watch.lines.all()
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    assert_eq!(bump(), json!({"ok": 1}));
    assert_eq!(bump(), json!({"ok": 2}));

    let edited = COUNTER.replace("self.count += 1;", "self.count += 10;");
    std::fs::write(&source, edited).expect("edit");
    watch.lines.wait_for("s after the save", build_deadline);
    assert_eq!(bump(), json!({"ok": 12}), "new code, state kept");

    let broken = COUNTER.replace("self.count += 1;", "self.count += oops;");
    std::fs::write(&source, broken).expect("break");
    watch.lines.wait_for(
        "the build failed; the running version stays",
        build_deadline,
    );
    assert!(watch.lines.all().contains("oops"), "cargo's errors shown");
    assert_eq!(bump(), json!({"ok": 22}), "the old version still runs");
    drop(node);
}

/// `kit ps` on a node running echo and chat: a header, one line per
/// process with its state, mailbox depth and flags.
#[test]
fn kit_ps_lists_processes_with_state_and_flags() {
    let user_home = TempDir::new("ps-user");
    let node_home = TempDir::new("ps-node");
    let node = HearthProcess::start(node_home.path(), user_home.path(), "ps.os", &[]);
    let port = node.port.to_string();
    for (name, files) in [
        ("echo", echo_package()),
        ("chat", built_package("apps/chat", "chat.wasm")),
    ] {
        let dir = TempDir::new(&format!("ps-{name}"));
        for f in files {
            let path = dir.path().join(&f.path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("package dir");
            std::fs::write(path, f.bytes).expect("package file");
        }
        let out = kit_command(user_home.path())
            .arg("s")
            .arg(dir.path())
            .args(["--port", &port])
            .output()
            .expect("kit s");
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = kit_command(user_home.path())
        .args(["ps", "--port", &port])
        .output()
        .expect("kit ps");
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        lines[0].starts_with("PROCESS") && lines[0].contains("QUEUED"),
        "{said}"
    );
    let line = |id: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no {id} in {said}"))
            .split_whitespace()
            .collect()
    };
    // PROCESS STATE RESTARTS QUEUED BYTES MEMORY HANDLED FLAGS
    let echo = line("echo:echo:sys");
    assert_eq!(echo[1..5], ["running", "0", "0", "0"], "{said}");
    assert_eq!(echo[7], "public,networked", "{said}");
    assert_eq!(line("chat:chat:sys")[1], "running", "{said}");
    assert_eq!(line("chat:chat:sys")[7], "networked", "{said}");
    // Runtime services are listed too.
    assert!(said.contains(":distro:sys"), "{said}");

    let out = kit_command(user_home.path())
        .args(["ps", "--json", "--port", &port])
        .output()
        .expect("kit ps --json");
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let echo = list
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["id"] == "echo:echo:sys")
        .expect("echo listed");
    assert_eq!(echo["queued_requests"], 0);
    assert_eq!(echo["public"], true);
}

/// `kit logs`: the log `kit f` keeps, for one process, and `--follow`
/// prints a line logged after it started.
#[test]
fn kit_logs_prints_and_follows_one_process() {
    let user_home = TempDir::new("logs-user");
    let home = TempDir::new("logs-home");
    let echo = TempDir::new("logs-echo");
    for f in echo_package() {
        let path = echo.path().join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("package dir");
        std::fs::write(path, f.bytes).expect("package file");
    }
    let mut command = kit_command(user_home.path());
    command
        .args(["f", "--port", "0", "--home"])
        .arg(home.path())
        .args(["--", "--no-mdns"]);
    let fake = KitF::spawn(command);
    let port = port_in(home.path(), None);
    let out = kit_command(user_home.path())
        .arg("s")
        .arg(echo.path())
        .args(["--port", &port])
        .output()
        .expect("kit s");
    assert!(out.status.success(), "{}\n{}", text(&out), fake.lines.all());
    let tell = |body: &str| {
        let out = kit_command(user_home.path())
            .args(["i", "echo:echo:sys", body, "--non-block", "--port", &port])
            .output()
            .expect("kit i");
        assert!(out.status.success(), "{}", text(&out));
    };
    // Sent as compact JSON: `{"first":1}` is 11 bytes, `{"second":22}` 13.
    tell(r#"{"first": 1}"#);
    let logs = || -> String {
        let out = kit_command(user_home.path())
            .args(["logs", "echo:echo:sys", "--port", &port])
            .output()
            .expect("kit logs");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let t = Instant::now();
    while !logs().contains("sent 11 bytes") {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let said = logs();
    assert!(said.lines().all(|l| l.contains("echo:echo:sys")), "{said}");
    assert!(!said.contains("libp2p"), "other lines filtered out: {said}");

    let mut follow = kit_command(user_home.path());
    follow.args([
        "logs",
        "echo:echo:sys",
        "--follow",
        "-n",
        "0",
        "--port",
        &port,
    ]);
    let follow = KitF::spawn(follow);
    std::thread::sleep(Duration::from_millis(500));
    tell(r#"{"second": 22}"#);
    follow
        .lines
        .wait_for("sent 13 bytes", Duration::from_secs(30));
    assert!(
        !follow.lines.all().contains("sent 11 bytes"),
        "{}",
        follow.lines.all()
    );
}
