//! Hostile input from guests and uploads: spawn paths that leave the
//! package or name devices, FIFOs and huge files; spawning over a running
//! sibling; uploads that must be refused before the old version stops;
//! kv scans over a database larger than a message; native replies over the
//! message limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::api::{PackageFile, PackageUpload, INSTALL_PATH, SECRET_FILE, SECRET_HEADER};
use hearth::kernel::caps::ProcessCaps;
use hearth::native::{NativeEndpoint, Reply, ReplyFuture, Service};
use hearth::types::{Address, KernelMessage, ProcessId, SendErrorKind};
use serde_json::{json, Value};

use crate::common::*;
use crate::http::{call, webprobe_package_named};

/// The kind a refused spawn starts its message with, after the SDK's
/// `spawn refused: `.
fn spawn_kind(reply: &Value) -> &str {
    let detail = reply["err"]["detail"].as_str().unwrap_or_default();
    detail.strip_prefix("spawn refused: ").unwrap_or(detail)
}

fn pid(s: &str) -> ProcessId {
    s.parse().expect("process id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_refuses_paths_outside_the_package_devices_fifos_and_huge_files() {
    let n = TestNode::start("hostile-spawn").await;
    n.install_probe(standard_manifest()).await;
    let pkg = n.node.home().join("packages/probe:test/pkg");
    let fifo = pkg.join("fifo.wasm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // Sparse: one byte past the limit costs no disk.
    let limit = hearth::config::Limits::default().max_component_bytes as u64;
    std::fs::File::create(pkg.join("big.wasm"))
        .and_then(|f| f.set_len(limit + 1))
        .expect("sparse file");
    std::os::unix::fs::symlink("/dev/zero", pkg.join("zero.wasm")).expect("symlink");
    std::fs::create_dir(pkg.join("dir.wasm")).expect("dir");
    std::fs::write(pkg.join("junk.wasm"), b"not wasm at all").expect("junk");

    let cases = [
        ("../x.wasm", "bad-wasm-path"),
        ("/../metadata.json", "bad-wasm-path"),
        ("../../../../../../etc/passwd", "bad-wasm-path"),
        ("/dev/zero", "bad-wasm-path"),
        ("//dev/zero", "bad-wasm-path"),
        ("zero.wasm", "bad-wasm-path"),
        ("fifo.wasm", "bad-wasm-path"),
        ("dir.wasm", "bad-wasm-path"),
        ("", "bad-wasm-path"),
        ("big.wasm", "bad-component"),
        ("junk.wasm", "bad-component"),
    ];
    for (wasm, kind) in cases {
        let started = Instant::now();
        let reply = n
            .ask(
                "alpha:probe:test",
                json!({"spawn": {"name": "kid", "wasm": wasm}}),
            )
            .await
            .expect("the probe answers");
        assert_eq!(reply["err"]["kind"], "spawn-failed", "{wasm}: {reply}");
        assert!(spawn_kind(&reply).starts_with(kind), "{wasm}: {reply}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{wasm} took {:?}",
            started.elapsed()
        );
        assert!(!n.node.services().kernel.is_running(&pid("kid:probe:test")));
    }
    assert!(detail_of(&n, "big.wasm").await.contains("larger than"));
    // Still serving, and a good spawn works.
    let echoed = n.ask("alpha:probe:test", json!({"echo": 7})).await.unwrap();
    assert_eq!(echoed, json!(7));
    let ok = n
        .ask(
            "alpha:probe:test",
            json!({"spawn": {"name": "kid", "wasm": "probe.wasm"}}),
        )
        .await
        .unwrap();
    assert_eq!(ok["id"], "kid:probe:test", "{ok}");
    n.stop().await;
}

async fn detail_of(n: &TestNode, wasm: &str) -> String {
    let reply = n
        .ask(
            "alpha:probe:test",
            json!({"spawn": {"name": "kid", "wasm": wasm}}),
        )
        .await
        .unwrap();
    reply["err"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_a_running_sibling_is_refused_and_grants_it_nothing() {
    let n = TestNode::start("hostile-sibling").await;
    n.install_probe(json!([
        probe("alpha", true, json!("None"), &["gamma:probe:test"]),
        probe("beta", false, json!("None"), &[]),
        probe("gamma", false, json!("None"), &[]),
    ]))
    .await;
    let caps = &n.node.services().kernel.caps;
    let (alpha, beta, gamma) = (
        pid("alpha:probe:test"),
        pid("beta:probe:test"),
        pid("gamma:probe:test"),
    );
    assert!(caps.holds(&alpha, &gamma) && !caps.holds(&beta, &gamma));

    let reply = n
        .ask("alpha:probe:test", json!({"spawn": {"name": "beta"}}))
        .await
        .unwrap();
    assert!(spawn_kind(&reply).starts_with("already-running"), "{reply}");
    assert!(
        !caps.holds(&beta, &gamma),
        "beta inherited alpha's capability"
    );
    assert!(!caps.holds(&beta, &alpha), "beta was granted its 'parent'");
    // And in deed: beta still may not message gamma.
    let asked = n
        .ask(
            "beta:probe:test",
            json!({"ask": {"target": "gamma:probe:test", "body": {"echo": 1}}}),
        )
        .await
        .unwrap();
    assert_eq!(asked["err"]["kind"], "capability-missing", "{asked}");
    n.stop().await;
}

fn post_install(base: &str, secret: &str, files: Vec<PackageFile>) -> (u16, String) {
    let body = bincode::serde::encode_to_vec(&PackageUpload { files }, bincode::config::standard())
        .expect("encode");
    let (status, _, text) = call(
        "POST",
        &format!("{base}{INSTALL_PATH}"),
        &[(SECRET_HEADER, secret)],
        &body,
    );
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_upload_leaves_the_old_version_serving_its_bindings() {
    let n = TestNode::start("hostile-upload").await;
    n.install(webprobe_package_named("webprobe")).await;
    let base = format!("http://127.0.0.1:{}", n.node.http_addr().port());
    let secret = std::fs::read_to_string(n.node.home().join(SECRET_FILE)).unwrap();
    let echo = || {
        tokio::task::block_in_place(|| {
            call("GET", &format!("{base}/web:webprobe:test/echo/1"), &[], b"").0
        })
    };
    let mut up = false;
    for _ in 0..200 {
        if echo() == 200 {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "webprobe binds");

    let mut bad_manifest = webprobe_package_named("webprobe");
    bad_manifest[1].bytes = b"[{\"process_name\": 7".to_vec();
    let mut bad_wasm = webprobe_package_named("webprobe");
    bad_wasm[2].bytes = b"\0asm\x0d\0\x01\0garbage".to_vec();
    let mut escaping = webprobe_package_named("webprobe");
    escaping.push(file("pkg/../../../escape.txt", b"x".to_vec()));
    for (what, files) in [
        ("bad manifest", bad_manifest),
        ("bad wasm", bad_wasm),
        ("escaping path", escaping),
    ] {
        assert_eq!(files[1].path, "pkg/manifest.json");
        let (status, body) =
            tokio::task::block_in_place(|| post_install(&base, secret.trim(), files));
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body.contains("install-failed"), "{what}: {body}");
        assert_eq!(echo(), 200, "{what}: the old version still answers");
        assert!(n
            .node
            .services()
            .kernel
            .is_running(&pid("web:webprobe:test")));
    }
    assert!(!n.node.home().join("escape.txt").exists());
    // A good upload still replaces it.
    let (status, body) = tokio::task::block_in_place(|| {
        post_install(&base, secret.trim(), webprobe_package_named("webprobe"))
    });
    assert_eq!(status, 200, "{body}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_scan_over_a_big_database_pages_within_the_message_limit() {
    let n = TestNode::start("hostile-scan").await;
    n.install_probe(standard_manifest()).await;
    let kv = |cmd: Value| n.ask("alpha:probe:test", json!({ "kv": cmd }));
    // 24 x 100 KiB: more than twice the test node's 1 MiB message limit.
    let filled = kv(json!({"fill": {"db": "big", "prefix": "k", "count": 24, "size": 102_400}}))
        .await
        .unwrap();
    assert_eq!(filled, json!({"ok": 24}), "{filled}");
    let limit = 1024 * 1024;
    let mut start: Option<String> = None;
    let (mut total, mut pages) = (0, 0);
    loop {
        let page = kv(json!({"scan_page": {"db": "big", "prefix": "k", "start": start, "limit": 1000, "max_bytes": null}}))
            .await
            .unwrap();
        let page = &page["ok"];
        let count = page["count"].as_u64().expect("a page");
        assert!(count > 0, "{page}");
        assert!(page["bytes"].as_u64().unwrap() < limit, "{page}");
        total += count;
        pages += 1;
        match page["next"].as_str() {
            Some(next) => start = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(total, 24);
    assert!(pages >= 3, "{pages} pages");
    // A smaller budget gives smaller pages.
    let small = kv(json!({"scan_page": {"db": "big", "prefix": "k", "start": null, "limit": 1000, "max_bytes": 250_000}}))
        .await
        .unwrap();
    assert_eq!(small["ok"]["count"], 2, "{small}");
    assert_eq!(small["ok"]["next"], "k000002");
    n.stop().await;
}

/// A service answering every request with `size` bytes.
struct Oversized {
    size: usize,
}

impl Service for Oversized {
    fn handle(&self, _request: KernelMessage) -> ReplyFuture<'_> {
        let size = self.size;
        Box::pin(async move {
            Some(Reply {
                body: vec![b'x'; size],
                blob: None,
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_reply_over_the_limit_fails_at_once_as_payload_too_large() {
    let n = TestNode::start("hostile-reply").await;
    n.install_probe(standard_manifest()).await;
    let services = n.node.services();
    let limit = services.kernel.limits().max_message_bytes;
    let id = pid("oversized:distro:sys");
    let caps = ProcessCaps {
        public: true,
        networking: false,
        system: false,
    };
    let service = Arc::new(Oversized { size: limit + 1 });
    let _endpoint = NativeEndpoint::start(services, id.clone(), caps, Some(service)).unwrap();

    // From the node itself.
    let started = Instant::now();
    let target = Address::new(n.node.name().to_string(), id);
    let asked = n
        .node
        .injector()
        .ask(target, b"{}".to_vec(), None, Duration::from_secs(10))
        .await;
    let error = asked.expect_err("the reply cannot be delivered");
    assert_eq!(error.kind, SendErrorKind::PayloadTooLarge, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // From a process.
    let started = Instant::now();
    let reply = n
        .ask(
            "alpha:probe:test",
            json!({"ask": {"target": "oversized:distro:sys", "body": {}, "timeout_ms": 10000}}),
        )
        .await
        .unwrap();
    assert_eq!(reply["err"]["kind"], "payload-too-large", "{reply}");
    assert!(started.elapsed() < Duration::from_secs(2));
    n.stop().await;
}

/// A service that never finishes a request: its backlog only grows.
struct Stuck;

impl Service for Stuck {
    fn handle(&self, _request: KernelMessage) -> ReplyFuture<'_> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_backlog_full_in_bytes_refuses_with_mailbox_full() {
    let n = TestNode::start("hostile-backlog").await;
    let services = n.node.services();
    let id = pid("stuck:distro:sys");
    let caps = ProcessCaps {
        public: true,
        networking: false,
        system: false,
    };
    let _endpoint =
        NativeEndpoint::start(services, id.clone(), caps, Some(Arc::new(Stuck))).unwrap();
    let target = Address::new(n.node.name().to_string(), id);
    // 900 KB each: the byte bound is reached long before the count bound.
    let size = 900 * 1000;
    let sends = hearth::native::SERVICE_BACKLOG_BYTES / size + 8;
    assert!(sends < hearth::native::SERVICE_BACKLOG);
    let mut asks = Vec::new();
    for _ in 0..sends {
        let injector = n.node.injector().clone();
        let target = target.clone();
        asks.push(tokio::spawn(async move {
            let started = Instant::now();
            let result = injector
                .ask(target, vec![b' '; size], None, Duration::from_secs(3))
                .await;
            (result.map(|_| ()), started.elapsed())
        }));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut full = 0;
    for ask in asks {
        let (result, took) = ask.await.unwrap();
        let error = result.expect_err("the stuck service never answers");
        match error.kind {
            SendErrorKind::MailboxFull => {
                full += 1;
                assert!(took < Duration::from_secs(2), "refused at once");
            }
            SendErrorKind::Timeout => {}
            other => panic!("unexpected {other:?}: {error:?}"),
        }
    }
    assert!(full >= 1, "past the byte bound senders get mailbox-full");
    n.stop().await;
}

/// A guest that spawns without end meets the node's process cap: a typed
/// `node-full` refusal, never an abort (each instance costs memory
/// mappings, and a process out of them aborts). The node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_without_end_meets_the_node_process_cap() {
    let home = TempDir::new("hostile-spawn-cap");
    let mut config = test_config(home.path(), "hostile-spawn-cap");
    config.limits.max_processes = 24;
    let n = TestNode::start_with(config, home).await;
    n.install_probe(standard_manifest()).await;
    let kernel = &n.node.services().kernel;
    let mut spawned = 0;
    let mut refused = None;
    for i in 0..64 {
        let reply = n
            .ask(
                "alpha:probe:test",
                json!({"spawn": {"name": format!("kid{i}"), "wasm": "probe.wasm"}}),
            )
            .await
            .expect("the probe answers");
        if reply["id"].is_string() {
            spawned += 1;
            continue;
        }
        refused = Some(reply);
        break;
    }
    let refused = refused.expect("the cap refused a spawn before 64 children");
    assert!(spawn_kind(&refused).starts_with("node-full"), "{refused}");
    assert!(spawned > 0, "no child started below the cap");
    assert_eq!(
        kernel.processes().len(),
        24,
        "the node runs exactly its cap"
    );
    // Still serving.
    let echoed = n.ask("alpha:probe:test", json!({"echo": 9})).await.unwrap();
    assert_eq!(echoed, json!(9));
    n.stop().await;
}
