//! Python processes (componentize-py, `process-sdk/python`) on real nodes:
//! Python and Rust apps ask each other both ways, on one node and across
//! two, with typed errors crossing in both directions; Python state
//! survives a restart and a `kill -9` during writes; a Python process that
//! raises, spins or allocates without bound is stopped alone, with its
//! traceback in the crash report; py-notes answers over HTTP; and
//! `kit new --lang python` builds and runs from outside the checkout.
//!
//! The Python packages are built by the real `kit b`, once per test run,
//! and `kit b` skips a build whose inputs did not change, so later runs
//! reuse the components. The in-process nodes share one compiled-code
//! directory (each node's `<home>/compiled` is a link to it): an 18 MB
//! component is compiled once per machine, not once per test node.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hearth::api::PackageFile;
use hearth::types::SendErrorKind;
use serde_json::{json, Value};

use crate::common::*;

const PY_A: &str = "py-a:pyprobe:test";
const PY_B: &str = "py-b:pyprobe:test";
const NOTEBOOK: &str = "notebook:notebook:sys";
const ECHO: &str = "echo:echo:sys";

/// `kit b DIR` (relative to the workspace), once per test binary per
/// directory; returns the package directory.
fn kit_built(dir: &'static str, once: &'static OnceLock<PathBuf>) -> &'static Path {
    once.get_or_init(|| {
        let root = workspace_root().join(dir);
        let out = Command::new(binaries().join("kit"))
            .arg("b")
            .arg(&root)
            .output()
            .expect("run kit b");
        assert!(
            out.status.success(),
            "kit b {dir} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        root
    })
}

fn pyprobe_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    kit_built("tests/apps/pyprobe", &DIR)
}

fn py_notes_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    kit_built("apps/py-notes", &DIR)
}

/// A manifest entry for a Python probe process.
fn py(name: &str, on_exit: &str) -> Value {
    json!({
        "process_name": name,
        "process_wasm_path": "/pyprobe.wasm",
        "on_exit": on_exit,
        "request_networking": true,
        "request_capabilities": [],
        "grant_capabilities": [],
        "public": true,
    })
}

fn pyprobe_package(manifest: Value) -> Vec<PackageFile> {
    let dir = pyprobe_dir();
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    vec![
        file("metadata.json", read(dir.join("metadata.json"))),
        file(
            "pkg/manifest.json",
            serde_json::to_vec(&manifest).expect("json"),
        ),
        file("pkg/pyprobe.wasm", read(dir.join("pkg/pyprobe.wasm"))),
    ]
}

/// The compiled-code directory the Python tests share, filled once per
/// test binary with the Python components (compiling an 18 MB component
/// takes seconds of CPU: tests starting together would each compile it).
fn shared_compiled_code() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shared = workspace_root().join("target/python-test-compiled");
        std::fs::create_dir_all(&shared).expect("shared compile cache");
        let runtime = hearth::runtime::Runtime::new(Some(shared.clone())).expect("engine");
        for wasm in [
            pyprobe_dir().join("pkg/pyprobe.wasm"),
            py_notes_dir().join("pkg/py_notes.wasm"),
        ] {
            let bytes = std::fs::read(&wasm).expect("a built component");
            runtime
                .compile(&wasm.display().to_string(), &bytes)
                .expect("the component compiles");
        }
        shared
    })
}

/// Links `<home>/compiled` to the compiled-code directory the Python tests
/// share (see the module doc).
fn share_compiled_code(home: &Path) {
    let shared = shared_compiled_code();
    let link = home.join(hearth::runtime::COMPILED_DIR);
    if !link.exists() {
        std::os::unix::fs::symlink(shared, &link).expect("link the compile cache");
    }
}

/// A node with echo, the notebook and the Python probes `py-a`, `py-b`.
/// Python calls get 2 s of compute (the harness default is 300 ms).
async fn py_node(name: &str, bootstrap: Option<String>) -> TestNode {
    let home = TempDir::new(name);
    share_compiled_code(home.path());
    let n = TestNode::start_with(py_config(home.path(), name, bootstrap), home).await;
    n.install(echo_package()).await;
    n.install(built_package("apps/notebook", "notebook.wasm"))
        .await;
    n.install(pyprobe_package(json!([
        py("py-a", "None"),
        py("py-b", "None")
    ])))
    .await;
    n
}

fn py_config(home: &Path, name: &str, bootstrap: Option<String>) -> hearth::NodeConfig {
    let mut config = test_config(home, name);
    config.limits.max_call_time = Duration::from_secs(2);
    config.net.bootstrap = bootstrap.into_iter().collect();
    config
}

/// Asks `target` on `n`, retrying while the reply (anywhere in it) says
/// `offline`: connections between nodes come up asynchronously.
async fn ask_until_online(n: &TestNode, target: &str, body: Value) -> Value {
    let t = Instant::now();
    loop {
        let reply = n.ask(target, body.clone()).await.expect("answers");
        let text = reply.to_string();
        if !text.contains("\"offline\"") || t.elapsed() > Duration::from_secs(20) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn call(target: &str, method: &str, args: Value) -> Value {
    json!({"call": {"target": target, "method": method, "args": args}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_apps_ask_each_other_on_one_node() {
    let n = py_node("py-local.os", None).await;

    // Python -> Rust (echo's #[app] method, named arguments, envelope).
    let r = n
        .ask(PY_A, call(ECHO, "echo", json!({"message": [1, "two"]})))
        .await
        .unwrap();
    assert_eq!(r, json!({"ok": {"ok": [1, "two"]}}), "{r}");

    // Rust -> Python: the notebook's async handler awaits the Python
    // probe's `echo` through echo's generated Rust client, as if it were
    // the Rust echo app.
    let r = n
        .ask(
            NOTEBOOK,
            json!({"put_echoed": {"key": "k", "text": "via python", "echo": PY_A}}),
        )
        .await
        .unwrap();
    assert_eq!(r["ok"]["echoed"], "via python", "{r}");

    // Python -> Python.
    let r = n
        .ask(PY_A, call(PY_B, "echo", json!({"message": "py to py"})))
        .await
        .unwrap();
    assert_eq!(r, json!({"ok": {"ok": "py to py"}}), "{r}");

    // Typed errors, Rust -> Python: the SDK's codes and a handler's own.
    let r = n
        .ask(PY_A, call(NOTEBOOK, "no_such_method", json!({})))
        .await
        .unwrap();
    assert_eq!(r["ok"]["code"], "unknown-method", "{r}");
    let r = n
        .ask(PY_A, call(NOTEBOOK, "put", json!({"key": "a"})))
        .await
        .unwrap();
    assert_eq!(r["ok"]["code"], "bad-request", "{r}");
    assert!(
        r["ok"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `text`"),
        "{r}"
    );
    // A request that cannot be delivered is a SendError with its kind.
    let r = n
        .ask(PY_A, call("nobody:pyprobe:test", "echo", json!({})))
        .await
        .unwrap();
    assert_eq!(r["ok"]["kind"], "unknown-process", "{r}");
    // Escaping a handler, a SendError becomes the error reply with its
    // kind as the code (what `?` does in Rust).
    let r = n
        .ask(
            PY_A,
            json!({"call_raw": {"target": "nobody:pyprobe:test", "method": "echo", "args": {}}}),
        )
        .await
        .unwrap();
    assert_eq!(r["error"]["code"], "unknown-process", "{r}");

    // Typed errors, Python -> Rust: the Python probe's own code reaches
    // the notebook's generated client, which passes it through.
    let r = n
        .ask(
            NOTEBOOK,
            json!({"put_echoed": {"key": "k", "text": "refuse", "echo": PY_A}}),
        )
        .await
        .unwrap();
    assert_eq!(r["error"]["code"], "refused", "{r}");
    assert_eq!(r["error"]["message"], "the Python probe refuses", "{r}");

    // The Python App layer answers wrong shapes like #[app] does.
    let r = n.ask(PY_A, json!({"bump": {"by": "x"}})).await.unwrap();
    assert_eq!(r["error"]["code"], "bad-request", "{r}");
    let r = n.ask(PY_A, json!({"bump": {"nope": 1}})).await.unwrap();
    assert_eq!(r["error"]["code"], "bad-request", "unknown argument: {r}");
    let r = n.ask(PY_A, json!([1])).await.unwrap();
    assert_eq!(r["error"]["code"], "bad-request", "{r}");
    let r = n.ask(PY_A, json!({"nope": {}})).await.unwrap();
    assert_eq!(r["error"]["code"], "unknown-method", "{r}");
    assert!(
        r["error"]["details"]
            .as_array()
            .unwrap()
            .contains(&json!("echo")),
        "{r}"
    );
    // `count` is local only: from this node it works.
    assert_eq!(n.ask(PY_A, json!({"count": null})).await.unwrap()["ok"], 0);

    // A mixed package (it replaces the probe package): a Python and a
    // Rust process side by side.
    let mut mixed = pyprobe_package(json!([
        py("py-m", "None"),
        {
            "process_name": "rs-m",
            "process_wasm_path": "/echo.wasm",
            "on_exit": "None",
            "request_networking": false,
            "request_capabilities": [],
            "grant_capabilities": [],
            "public": true,
        },
    ]));
    mixed.push(file(
        "pkg/echo.wasm",
        std::fs::read(guests().join("echo.wasm")).expect("echo.wasm built"),
    ));
    let started = n.install(mixed).await;
    assert_eq!(started.len(), 2, "{started:?}");
    let r = n
        .ask(
            "py-m:pyprobe:test",
            call("rs-m:pyprobe:test", "echo", json!({"message": "mixed"})),
        )
        .await
        .unwrap();
    assert_eq!(r, json!({"ok": {"ok": "mixed"}}), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_apps_ask_each_other_across_two_nodes() {
    let a = py_node("py-far-a.os", None).await;
    let b = py_node("py-far-b.os", Some(a.p2p_addr().await)).await;

    // Python on b -> Rust on a.
    let r = ask_until_online(
        &b,
        PY_A,
        call(
            "py-far-a.os@echo:echo:sys",
            "echo",
            json!({"message": "far"}),
        ),
    )
    .await;
    assert_eq!(r, json!({"ok": {"ok": "far"}}), "{r}");

    // Rust on b -> Python on a.
    let r = ask_until_online(
        &b,
        NOTEBOOK,
        json!({"put_echoed": {"key": "k", "text": "over the wire", "echo": "py-far-a.os@py-a:pyprobe:test"}}),
    )
    .await;
    assert_eq!(r["ok"]["echoed"], "over the wire", "{r}");

    // Python on a -> Python on b.
    let r = ask_until_online(
        &a,
        PY_A,
        call(
            "py-far-b.os@py-b:pyprobe:test",
            "echo",
            json!({"message": "py to far py"}),
        ),
    )
    .await;
    assert_eq!(r, json!({"ok": {"ok": "py to far py"}}), "{r}");

    // Typed errors across the wire, both ways.
    let r = ask_until_online(
        &b,
        NOTEBOOK,
        json!({"put_echoed": {"key": "k", "text": "refuse", "echo": "py-far-a.os@py-a:pyprobe:test"}}),
    )
    .await;
    assert_eq!(r["error"]["code"], "refused", "{r}");
    let r = ask_until_online(
        &a,
        PY_A,
        call(
            "py-far-b.os@notebook:notebook:sys",
            "put",
            json!({"key": 1}),
        ),
    )
    .await;
    assert_eq!(r["ok"]["code"], "bad-request", "{r}");
    // `count` is not #[remote]-exposed: another node gets not-allowed.
    let r = ask_until_online(
        &a,
        PY_A,
        call("py-far-b.os@py-b:pyprobe:test", "count", json!({})),
    )
    .await;
    assert_eq!(r["ok"]["code"], "not-allowed", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_state_survives_a_node_restart() {
    let n = py_node("py-restart.os", None).await;
    for i in 1..=5 {
        let r = n.ask(PY_A, json!({"bump": {"by": 2}})).await.unwrap();
        assert_eq!(r["ok"], 2 * i, "{r}");
    }
    let home = n.stop().await;
    let config = py_config(home.path(), "py-restart.os", None);
    let n = TestNode::start_with(config, home).await;
    let t = Instant::now();
    let count = loop {
        match n.ask(PY_A, json!({"count": {}})).await {
            Ok(r) => break r,
            Err(e) if t.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("py-a did not come back: {e:?}"),
        }
    };
    assert_eq!(count["ok"], 10, "{count}");
}

/// `py-ok` and the Rust echo still answer.
async fn assert_alive(n: &TestNode) {
    let r = n
        .ask("py-ok:pyprobe:test", json!({"echo": {"message": "alive"}}))
        .await
        .unwrap();
    assert_eq!(r["ok"], "alive", "{r}");
    let r = n.ask(ECHO, json!({"echo": {"message": 1}})).await.unwrap();
    assert_eq!(r["ok"], 1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_spinning_and_hogging_python_processes_are_stopped_alone() {
    let home = TempDir::new("py-crash.os");
    share_compiled_code(home.path());
    let n = TestNode::start_with(py_config(home.path(), "py-crash.os", None), home).await;
    n.install(echo_package()).await;
    n.install(pyprobe_package(json!([
        py("py-raise", "None"),
        py("py-spin", "None"),
        py("py-hog", "None"),
        py("py-ok", "None"),
    ])))
    .await;
    // An exception the handler did not expect: the asker gets
    // process-exited, with the Python traceback as the last words.
    let e = n
        .ask(
            "py-raise:pyprobe:test",
            json!({"explode": {"what": "tests"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, SendErrorKind::ProcessExited, "{e:?}");
    assert!(
        e.detail.contains("ValueError: python says no to tests"),
        "{}",
        e.detail
    );
    assert!(
        e.detail.contains("in _deeper") && e.detail.contains("app.py"),
        "the traceback's frames: {}",
        e.detail
    );
    assert_alive(&n).await;

    // A loop that never ends: interrupted at max_call_time.
    let t = Instant::now();
    let e = n
        .ask_within(
            "py-spin:pyprobe:test",
            json!({"spin": {}}),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, SendErrorKind::ProcessExited, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(25), "{:?}", t.elapsed());
    assert_alive(&n).await;

    // Allocation without bound: stopped at the memory limit (a
    // MemoryError's traceback, or the trap of a refused memory.grow).
    let e = n
        .ask_within(
            "py-hog:pyprobe:test",
            json!({"hog": {}}),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, SendErrorKind::ProcessExited, "{e:?}");
    assert_alive(&n).await;

    // They stay down (on_exit None); their neighbour never noticed.
    for dead in ["py-raise", "py-spin", "py-hog"] {
        let e = n
            .ask(
                &format!("{dead}:pyprobe:test"),
                json!({"echo": {"message": 1}}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, SendErrorKind::UnknownProcess, "{dead}: {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_notes_answers_over_http() {
    let home = TempDir::new("py-notes.os");
    share_compiled_code(home.path());
    let n = TestNode::start_with(py_config(home.path(), "py-notes.os", None), home).await;
    let dir = py_notes_dir();
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    n.install(vec![
        file("metadata.json", read(dir.join("metadata.json"))),
        file("pkg/manifest.json", read(dir.join("pkg/manifest.json"))),
        file("pkg/py_notes.wasm", read(dir.join("pkg/py_notes.wasm"))),
    ])
    .await;
    let base = format!(
        "http://127.0.0.1:{}/py-notes:py-notes:sys",
        n.node.http_addr().port()
    );
    let http = |method: &str, path: &str, body: Value| {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, heads, text) = crate::http::call(
            method,
            &format!("{base}{path}"),
            &[("content-type", "application/json")],
            &body,
        );
        (status, heads, text)
    };
    let json_of = |text: &str| -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };

    // The binding appears once the process has bound it in init.
    let t = Instant::now();
    let (status, _, text) = loop {
        let answer = http(
            "PUT",
            "/api/notes/first",
            json!({"text": "hello from http"}),
        );
        if answer.0 != 404 || t.elapsed() > Duration::from_secs(20) {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        json_of(&text),
        json!({"key": "first", "text": "hello from http"})
    );

    let (status, _, text) = http("GET", "/api/notes", Value::Null);
    assert_eq!(status, 200, "{text}");
    let list = json_of(&text);
    assert_eq!(list["notes"][0]["text"], "hello from http", "{list}");
    assert_eq!(list["writes"], 1, "{list}");

    // Typed errors carry their status and the envelope.
    let (status, _, text) = http("GET", "/api/notes/missing", Value::Null);
    assert_eq!(status, 404, "{text}");
    assert_eq!(json_of(&text)["error"]["code"], "not-found", "{text}");
    let (status, _, text) = http("PUT", "/api/notes/blank", json!({"text": "   "}));
    assert_eq!(status, 422, "{text}");
    assert_eq!(json_of(&text)["error"]["code"], "empty", "{text}");

    // The page.
    let (status, heads, text) = http("GET", "/", Value::Null);
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        crate::http::header(&heads, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(text.contains("<h1>py-notes</h1>"), "{text}");

    // The same app by message.
    let r = n
        .ask("py-notes:py-notes:sys", json!({"get": {"key": "first"}}))
        .await
        .unwrap();
    assert_eq!(r["ok"]["text"], "hello from http", "{r}");
}

fn kit(user_home: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(binaries().join("kit"))
        .env("HOME", user_home)
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run kit")
}

fn assert_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kit_new_python_builds_and_runs_outside_the_checkout() {
    let user_home = TempDir::new("py-kit-user");
    let work = TempDir::new("py-kit-work");
    let node_home = TempDir::new("py-kit-node");
    share_compiled_code(node_home.path());
    assert!(!work.path().starts_with(workspace_root()));

    let said = assert_ok(
        &kit(
            user_home.path(),
            work.path(),
            &["new", "--lang", "python", "hello-py"],
        ),
        "kit new --lang python",
    );
    assert!(said.contains("hello-py/app.py"), "{said}");
    let pkg = work.path().join("hello-py");

    let node = HearthProcess::start(node_home.path(), user_home.path(), "pykit.os", &[]);
    let port = node.port.to_string();
    let said = assert_ok(
        &kit(user_home.path(), &pkg, &["bs", "--port", &port]),
        "kit bs",
    );
    assert!(said.contains("hello-py:hello-py:sys"), "{said}");

    let t = Instant::now();
    let reply = loop {
        let out = kit(
            user_home.path(),
            &pkg,
            &[
                "i",
                "hello-py:hello-py:sys",
                r#"{"hello_py": {"message": "world"}}"#,
                "--port",
                &port,
            ],
        );
        if out.status.success() || t.elapsed() > Duration::from_secs(30) {
            break assert_ok(&out, "kit i");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let reply: Value = serde_json::from_str(reply.trim()).expect("kit i prints JSON");
    assert_eq!(reply, json!({"ok": "world"}));

    // A Python syntax error is a build error naming the file and line.
    let app = pkg.join("hello-py/app.py");
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str("\ndef broken(:\n");
    std::fs::write(&app, text).unwrap();
    let out = kit(user_home.path(), &pkg, &["b"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hello-py/app.py") && err.contains("SyntaxError"),
        "{err}"
    );
}

#[test]
fn kill_9_during_python_writes_loses_nothing_acknowledged() {
    let user_home = TempDir::new("py-kill-user");
    let node_home = TempDir::new("py-kill-node");
    share_compiled_code(node_home.path());
    let pyprobe = pyprobe_dir().to_str().expect("utf-8 path").to_string();
    let mut acknowledged: u64 = 0;
    for round in 0..4 {
        let mut node = HearthProcess::start(node_home.path(), user_home.path(), "pykill.os", &[]);
        let port = node.port.to_string();
        if round == 0 {
            assert_ok(
                &kit(
                    user_home.path(),
                    Path::new("/"),
                    &["s", &pyprobe, "--port", &port],
                ),
                "kit s",
            );
        }
        // The count survived the kill: at least every acknowledged bump.
        let t = Instant::now();
        let count = loop {
            let out = kit(
                user_home.path(),
                Path::new("/"),
                &["i", PY_A, r#"{"count": {}}"#, "--port", &port],
            );
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
                break v["ok"].as_u64().expect("a count");
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "py-a did not answer: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            count >= acknowledged,
            "round {round}: {count} < {acknowledged} acknowledged"
        );
        acknowledged = count;
        if round == 3 {
            break;
        }
        // Bumps until a few are acknowledged, then a kill in the middle of
        // the next ones (a writer thread keeps asking).
        let stop_at = acknowledged + 5;
        let writer = {
            let (user_home, port) = (user_home.path().to_path_buf(), port.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                loop {
                    let out = kit(
                        &user_home,
                        Path::new("/"),
                        &["i", PY_A, r#"{"bump": {"by": 1}}"#, "--port", &port],
                    );
                    if !out.status.success() {
                        return last; // the node is gone
                    }
                    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                    if let Some(n) = v["ok"].as_u64() {
                        last = n;
                    }
                }
            })
        };
        let t = Instant::now();
        while acknowledged < stop_at && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
            let out = kit(
                user_home.path(),
                Path::new("/"),
                &["i", PY_A, r#"{"count": {}}"#, "--port", &port],
            );
            if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
                acknowledged = acknowledged.max(v["ok"].as_u64().unwrap_or(0));
            }
        }
        node.kill();
        let last = writer.join().expect("writer thread");
        acknowledged = acknowledged.max(last);
    }
}
