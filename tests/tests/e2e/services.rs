//! The node services through the probe's SDK clients: `kv:distro:sys`,
//! `vfs:distro:sys`, `timer:distro:sys`, and the disk report.

use std::time::Duration;

use hearth::api::{DiskUsage, PackageFile, DISK_PATH, SECRET_FILE, SECRET_HEADER};
use serde_json::{json, Value};

use crate::common::*;

/// The probe wasm as another package, `other:test`, with one public
/// process `outsider`.
fn other_package() -> Vec<PackageFile> {
    let metadata = json!({
        "name": "other",
        "properties": {"package_name": "other", "publisher": "test", "current_version": "0.1.0"}
    });
    let manifest = json!([probe("outsider", true, json!("None"), &[])]);
    let mut files = probe_package(manifest);
    files[0].bytes = serde_json::to_vec(&metadata).unwrap();
    files
}

async fn node_with_two_packages(name: &str) -> TestNode {
    let n = TestNode::start(name).await;
    n.install_probe(standard_manifest()).await;
    n.install(other_package()).await;
    n
}

fn error_text(reply: &Value) -> String {
    reply["err"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_get_set_scan_batch_and_grants() {
    let n = node_with_two_packages("kv").await;
    let kv = |cmd: Value| n.ask("alpha:probe:test", json!({ "kv": cmd }));
    assert_eq!(
        kv(json!({"get": {"db": "notes", "key": "k1"}}))
            .await
            .unwrap(),
        json!({"ok": null})
    );
    for (k, v) in [("k1", "one"), ("k2", "two"), ("other", "x")] {
        let r = kv(json!({"set": {"db": "notes", "key": k, "value": v}}))
            .await
            .unwrap();
        assert_eq!(r, json!({"ok": null}), "{r}");
    }
    assert_eq!(
        kv(json!({"get": {"db": "notes", "key": "k2"}}))
            .await
            .unwrap(),
        json!({"ok": "two"})
    );
    let scan = kv(json!({"scan": {"db": "notes", "prefix": "k", "limit": 10}}))
        .await
        .unwrap();
    assert_eq!(scan, json!({"ok": [["k1", "one"], ["k2", "two"]]}));
    let limited = kv(json!({"scan": {"db": "notes", "prefix": "", "limit": 1}}))
        .await
        .unwrap();
    assert_eq!(limited, json!({"ok": [["k1", "one"]]}));
    let batch = json!({"batch": {"db": "notes", "sets": [["k3", "three"]], "deletes": ["k1"]}});
    assert_eq!(kv(batch).await.unwrap(), json!({"ok": null}));
    let scan = kv(json!({"scan": {"db": "notes", "prefix": "k", "limit": 10}}))
        .await
        .unwrap();
    assert_eq!(scan, json!({"ok": [["k2", "two"], ["k3", "three"]]}));
    assert_eq!(
        kv(json!({"delete": {"db": "notes", "key": "k2"}}))
            .await
            .unwrap(),
        json!({"ok": true})
    );

    // Another package may not open the database until granted.
    let outsider = |cmd: Value| n.ask("outsider:other:test", json!({ "kv": cmd }));
    let get = json!({"get": {"db": "notes", "key": "k3", "package": "probe:test"}});
    let refused = outsider(get.clone()).await.unwrap();
    assert!(error_text(&refused).contains("Forbidden"), "{refused}");
    let write = json!({"set": {"db": "notes", "key": "k9", "value": "x", "package": "probe:test"}});
    assert!(error_text(&outsider(write.clone()).await.unwrap()).contains("Forbidden"));
    kv(json!({"grant": {"db": "notes", "to": "other:test"}}))
        .await
        .unwrap();
    assert_eq!(outsider(get).await.unwrap(), json!({"ok": "three"}));
    assert_eq!(outsider(write).await.unwrap(), json!({"ok": null}));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vfs_files_chunks_traversal_and_cross_package_access() {
    let n = node_with_two_packages("vfs").await;
    let vfs = |cmd: Value| n.ask("alpha:probe:test", json!({ "vfs": cmd }));
    vfs(json!({"create_dir": {"path": "docs"}})).await.unwrap();
    let w = vfs(json!({"write": {"path": "docs/a.txt", "text": "hello "}}))
        .await
        .unwrap();
    assert_eq!(w, json!({"ok": null}), "{w}");
    vfs(json!({"append": {"path": "docs/a.txt", "text": "world"}}))
        .await
        .unwrap();
    let chunk = vfs(json!({"read": {"path": "docs/a.txt", "offset": 6, "length": 3}}))
        .await
        .unwrap();
    assert_eq!(chunk, json!({"ok": {"text": "wor", "eof": false}}));
    let tail = vfs(json!({"read": {"path": "docs/a.txt", "offset": 9, "length": 100}}))
        .await
        .unwrap();
    assert_eq!(tail, json!({"ok": {"text": "ld", "eof": true}}));
    let meta = vfs(json!({"metadata": {"path": "docs/a.txt"}}))
        .await
        .unwrap();
    assert_eq!(meta, json!({"ok": {"is_dir": false, "len": 11}}));
    vfs(json!({"rename": {"from": "docs/a.txt", "to": "docs/b.txt"}}))
        .await
        .unwrap();
    assert_eq!(
        vfs(json!({"list": {"path": "docs"}})).await.unwrap(),
        json!({"ok": ["b.txt"]})
    );

    // Traversal is refused with a typed error, whatever the operation.
    for path in ["../other:test/x", "docs/../../x", "/etc/passwd", "./docs"] {
        let r = vfs(json!({"read": {"path": path, "offset": 0, "length": 10}}))
            .await
            .unwrap();
        let e = error_text(&r);
        assert!(
            e.contains("Traversal") || e.contains("Absolute"),
            "{path}: {r}"
        );
    }
    // A read past the 64 KiB served in the sender's call matches the file,
    // in the middle and to the end.
    let big: String = (0..200_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    std::fs::write(n.node.home().join("vfs/probe:test/docs/big.txt"), &big).unwrap();
    let r = vfs(json!({"read": {"path": "docs/big.txt", "offset": 1000, "length": 150_000}}))
        .await
        .unwrap();
    assert!(
        r == json!({"ok": {"text": &big[1000..151_000], "eof": false}}),
        "a large read differs from the file"
    );
    let r = vfs(json!({"read": {"path": "docs/big.txt", "offset": 120_000, "length": 1 << 22}}))
        .await
        .unwrap();
    assert!(
        r == json!({"ok": {"text": &big[120_000..], "eof": true}}),
        "a large read to the end differs from the file"
    );
    vfs(json!({"remove": {"path": "docs/big.txt"}}))
        .await
        .unwrap();

    #[cfg(unix)]
    {
        let drive = n.node.home().join("vfs/probe:test");
        std::os::unix::fs::symlink(n.node.home(), drive.join("escape")).unwrap();
        std::fs::write(n.node.home().join("big.secret"), &big).unwrap();
        let r = vfs(json!({"read": {"path": "escape/big.secret", "offset": 0, "length": 1 << 22}}))
            .await
            .unwrap();
        assert!(
            error_text(&r).contains("Traversal"),
            "a large read through a symlink out of the drive"
        );
        let r = vfs(json!({"read": {"path": "escape/admin.secret", "offset": 0, "length": 99}}))
            .await
            .unwrap();
        assert!(
            error_text(&r).contains("Traversal"),
            "symlink out of the drive: {r}"
        );
        let r = vfs(json!({"write": {"path": "escape/planted", "text": "x"}}))
            .await
            .unwrap();
        assert!(error_text(&r).contains("Traversal"), "{r}");
        assert!(!n.node.home().join("planted").exists());
    }

    // Another package's drive needs a grant.
    let outsider = |cmd: Value| n.ask("outsider:other:test", json!({ "vfs": cmd }));
    let read =
        json!({"read": {"path": "docs/b.txt", "offset": 0, "length": 5, "drive": "probe:test"}});
    let refused = outsider(read.clone()).await.unwrap();
    assert!(error_text(&refused).contains("Forbidden"), "{refused}");
    vfs(json!({"grant": {"to": "other:test"}})).await.unwrap();
    assert_eq!(
        outsider(read).await.unwrap(),
        json!({"ok": {"text": "hello", "eof": false}})
    );
    vfs(json!({"remove": {"path": "docs"}})).await.unwrap();
    assert_eq!(
        vfs(json!({"list": {"path": ""}})).await.unwrap(),
        json!({"ok": ["escape"]})
    );
    n.stop().await;
}

/// Fired delays in firing order, with the elapsed ms the probe measured.
fn fired_list(reply: &Value) -> Vec<(u64, u64)> {
    reply["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("timers failed: {reply}"))
        .iter()
        .map(|pair| {
            (
                pair[0].as_u64().unwrap(),
                pair[1].as_u64().unwrap_or_else(|| panic!("{pair}")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_in_order_and_on_time() {
    let n = TestNode::start("timers").await;
    n.install_probe(standard_manifest()).await;
    let delays = [300u64, 0, 120, 60, 240, 180];
    let reply = n
        .ask("alpha:probe:test", json!({ "timers": delays }))
        .await
        .unwrap();
    let fired = fired_list(&reply);
    let order: Vec<u64> = fired.iter().map(|f| f.0).collect();
    assert_eq!(order, vec![0, 60, 120, 180, 240, 300]);
    for (ms, elapsed) in fired {
        assert!(
            elapsed >= ms && elapsed <= ms + 60,
            "timer of {ms} ms fired after {elapsed} ms"
        );
    }

    // Thousands pending at once: one heap, no task each; all fire in order.
    // Three processes set 1,000 each, 200 ms apart (a service admits
    // bursts of about 1,000 requests; past that senders get mailbox-full,
    // so a loaded machine needs the room). Each waits 400-800 ms, so the
    // three sets overlap and thousands are pending at once.
    let setters = ["alpha", "mortal", "phoenix"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let n = &n;
            async move {
                tokio::time::sleep(Duration::from_millis(200 * i as u64)).await;
                let many: Vec<u64> = (0..1000u64).map(|j| 400 + (j * 7919) % 400).collect();
                let target = format!("{name}:probe:test");
                n.ask_within(&target, json!({ "timers": many }), Duration::from_secs(10))
                    .await
            }
        });
    let mut all = 0;
    for reply in futures::future::join_all(setters).await {
        let fired = fired_list(&reply.unwrap());
        assert_eq!(fired.len(), 1000);
        // Order is by deadline (arrival + delay); arrivals of one burst
        // spread over a few milliseconds.
        assert!(
            fired.windows(2).all(|w| w[0].0 <= w[1].0 + 50),
            "fired out of order"
        );
        let late: Vec<_> = fired
            .iter()
            .filter(|(ms, elapsed)| *elapsed > ms + 250 || elapsed < ms)
            .collect();
        assert!(
            late.is_empty(),
            "timers off by more than 250 ms under load: {late:?}"
        );
        all += fired.len();
    }
    assert_eq!(all, 3000);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_use_is_reported_per_package() {
    let n = node_with_two_packages("disk").await;
    n.ask("alpha:probe:test", json!({"state_set": "x".repeat(1000)}))
        .await
        .unwrap();
    let big = "y".repeat(5000);
    n.ask(
        "alpha:probe:test",
        json!({"kv": {"set": {"db": "d", "key": "k", "value": big}}}),
    )
    .await
    .unwrap();
    n.ask(
        "alpha:probe:test",
        json!({"vfs": {"write": {"path": "f", "text": "z".repeat(7000)}}}),
    )
    .await
    .unwrap();
    let secret = std::fs::read_to_string(n.node.home().join(SECRET_FILE)).unwrap();
    let url = format!("http://127.0.0.1:{}{DISK_PATH}", n.node.http_addr().port());
    let usage: DiskUsage = tokio::task::block_in_place(|| {
        ureq::get(&url)
            .header(SECRET_HEADER, secret.trim())
            .call()
            .expect("GET /admin/disk")
            .body_mut()
            .read_json()
            .expect("disk json")
    });
    let probe = usage
        .packages
        .iter()
        .find(|p| p.package == "probe:test")
        .expect("probe listed");
    assert!(probe.state_bytes > 1000, "{probe:?}");
    assert!(probe.kv_bytes >= 5001, "{probe:?}");
    assert_eq!(probe.vfs_bytes, 7000);
    assert!(probe.package_bytes > 10_000, "the wasm counts: {probe:?}");
    let other = usage
        .packages
        .iter()
        .find(|p| p.package == "other:test")
        .expect("other listed");
    assert_eq!((other.kv_bytes, other.vfs_bytes), (0, 0));
    assert!(usage.store_bytes > 0);
    n.stop().await;
}
