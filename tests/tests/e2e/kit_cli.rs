//! The real binaries, as a user runs them: `hearth` boots a node, `kit`
//! builds, starts and pokes apps through the admin API.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

fn kit(user_home: &Path, args: &[&str]) -> Output {
    Command::new(binaries().join("kit"))
        .env("HOME", user_home)
        // Apps outside the workspace build into the shared target dir too.
        .env("CARGO_TARGET_DIR", workspace_root().join("target"))
        .args(args)
        .output()
        .expect("run kit")
}

fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
}

#[test]
fn kit_bs_then_kit_i_round_trip_and_typed_errors() {
    let user_home = TempDir::new("kit-user");
    let node_home = TempDir::new("kit-node");
    let node = HearthProcess::start(node_home.path(), user_home.path(), "kit.os", &[]);
    let port = node.port.to_string();
    let echo_dir = workspace_root().join("apps/echo");
    let echo_dir = echo_dir.to_str().expect("utf-8 path");

    let out = kit(user_home.path(), &["bs", echo_dir, "--port", &port]);
    assert!(
        out.status.success(),
        "kit bs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("echo:echo:sys"), "kit bs said: {said}");

    // The secret is found through ~/.hearth/run/<port>, not typed.
    let out = kit(
        user_home.path(),
        &["i", "echo:echo:sys", r#"{"ping":1}"#, "--port", &port],
    );
    assert!(
        out.status.success(),
        "kit i failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_json(&out), json!({"ping": 1}));

    let out = kit(
        user_home.path(),
        &[
            "i",
            "echo:echo:sys",
            r#"{"quiet":true}"#,
            "--port",
            &port,
            "--non-block",
        ],
    );
    assert!(out.status.success());
    assert!(stdout_json(&out)["id"].is_u64());

    // Typed errors: non-zero exit, the kind on stderr.
    let out = kit(
        user_home.path(),
        &["i", "nope:echo:sys", "{}", "--port", &port],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown-process"));
    let out = kit(
        user_home.path(),
        &["i", "echo:echo:sys", "{not json", "--port", &port],
    );
    assert_eq!(out.status.code(), Some(1));
    // Without the run file kit cannot find the secret, and says so.
    let stranger = TempDir::new("kit-stranger");
    let out = kit(
        stranger.path(),
        &["i", "echo:echo:sys", "{}", "--port", &port],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());

    // `kit r` stops the package and removes it; a second time is a typed
    // error.
    let out = kit(user_home.path(), &["r", echo_dir, "--port", &port]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kit r: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("stopped echo:echo:sys") && said.contains("removed echo:sys"),
        "{said}"
    );
    let out = kit(
        user_home.path(),
        &["i", "echo:echo:sys", "{}", "--port", &port],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown-process"));
    let out = kit(user_home.path(), &["r", "echo:sys", "--port", &port]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-installed"));
}

#[test]
fn kit_new_builds_and_runs_a_fresh_app() {
    let user_home = TempDir::new("new-user");
    let node_home = TempDir::new("new-node");
    let apps = TempDir::new("new-apps");
    let node = HearthProcess::start(node_home.path(), user_home.path(), "new.os", &[]);
    let port = node.port.to_string();
    let parent = apps.path().to_str().expect("utf-8 path");

    let out = kit(user_home.path(), &["new", "notes", "--dir", parent]);
    assert!(
        out.status.success(),
        "kit new: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = apps.path().join("notes");
    let out = kit(
        user_home.path(),
        &["bs", app.to_str().expect("utf-8"), "--port", &port],
    );
    assert!(
        out.status.success(),
        "kit bs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kit(
        user_home.path(),
        &[
            "i",
            "notes:notes:sys",
            r#"{"hello":"world"}"#,
            "--port",
            &port,
        ],
    );
    assert!(
        out.status.success(),
        "kit i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_json(&out), json!({"hello": "world"}));
}

/// The echo package, already built, laid out in `dir` for `kit s`.
fn echo_package_dir(dir: &Path) {
    for f in echo_package() {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("package dir");
        std::fs::write(path, f.bytes).expect("package file");
    }
}

/// Waits for the HTTP port a node in `home` writes once it serves.
fn port_of(home: &Path) -> String {
    let t = Instant::now();
    loop {
        if let Ok(port) = std::fs::read_to_string(home.join(hearth::api::PORT_FILE)) {
            return port.trim().to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{} never came up",
            home.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kit_f_nodes_2_boots_two_peers_that_reach_each_other() {
    let user_home = TempDir::new("two-user");
    let homes = TempDir::new("two-homes");
    let package = TempDir::new("two-echo");
    echo_package_dir(package.path());

    let out = kit(user_home.path(), &["f", "--nodes", "2", "--name", "x.os"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "--name with --nodes 2 is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("alice.os, bob.os"));

    // mDNS off: bob finds alice only through the bootstrap kit hands it.
    let fake = Command::new(binaries().join("kit"))
        .env("HOME", user_home.path())
        .args(["f", "--nodes", "2", "--port", "0", "--home"])
        .arg(homes.path())
        .args(["--", "--no-mdns"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kit f");
    let alice = port_of(&homes.path().join("alice.os"));
    let bob = port_of(&homes.path().join("bob.os"));
    let echo = package.path().to_str().expect("utf-8 path");
    let out = kit(user_home.path(), &["s", echo, "--port", &bob]);
    assert!(
        out.status.success(),
        "kit s: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Through alice to bob's echo: retried until bob's hello reached alice.
    let t = Instant::now();
    loop {
        let out = kit(
            user_home.path(),
            &[
                "i",
                "echo:echo:sys",
                r#"{"to":"bob"}"#,
                "--node",
                "bob.os",
                "--port",
                &alice,
            ],
        );
        if out.status.success() {
            assert_eq!(stdout_json(&out), json!({"to": "bob"}));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "alice never reached bob: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = kit(user_home.path(), &["peers", "--json", "--port", &alice]);
    let peers = stdout_json(&out);
    assert!(
        peers
            .as_array()
            .expect("peer list")
            .iter()
            .any(|p| p["name"] == "bob.os"),
        "{peers}"
    );

    // One Ctrl-C stops both nodes, gracefully, and kit says so.
    let sent = Command::new("kill")
        .args(["-INT", &fake.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let out = fake.wait_with_output().expect("kit f output");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kit f: {said}");
    assert!(
        said.contains("node alice.os stopped") && said.contains("node bob.os stopped"),
        "{said}"
    );
    // Each node's lines are labelled with its name.
    let logs = format!("{said}{}", String::from_utf8_lossy(&out.stdout));
    assert!(logs.contains("  bob.os | "), "{logs}");
}
