//! Chat across restarts: a member node killed with SIGKILL while the host
//! sends catches up with every message once, in order; messages sent while
//! the host is stopped wait in the outbox and arrive in order.

use std::path::Path;

use serde_json::json;

use super::*;

fn start_far(home: &Path, user_home: &Path, name: &str, bootstrap: &str) -> HearthProcess {
    HearthProcess::start(
        home,
        user_home,
        name,
        &[
            "--p2p-bind",
            "127.0.0.1",
            "--no-mdns",
            "--bootstrap",
            bootstrap,
        ],
    )
}

async fn install_far(port: u16, home: &Path) {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let secret = std::fs::read_to_string(home.join(hearth::api::SECRET_FILE)).unwrap();
        let upload = hearth::api::PackageUpload {
            files: chat_package(),
        };
        let body = bincode::serde::encode_to_vec(upload, bincode::config::standard()).unwrap();
        let url = format!("http://127.0.0.1:{port}{}", hearth::api::INSTALL_PATH);
        ureq::post(&url)
            .header(hearth::api::SECRET_HEADER, secret.trim())
            .send(&body[..])
            .expect("install chat on the far node");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_node_killed_while_the_host_sends_gets_every_message_once_in_order() {
    let alice = chat_node("alice.os", &[]).await;
    let a_addr = alice.p2p_addr().await;
    let a = At::Here(&alice);
    let bob_home = TempDir::new("bob");
    let user_home = TempDir::new("bob-user");
    let mut bob_proc = start_far(bob_home.path(), user_home.path(), "bob.os", &a_addr);
    install_far(bob_proc.port, bob_home.path()).await;
    let b = At::Far(bob_proc.port, bob_home.path());

    let room = create_room(a, "Crew", "private").await;
    a.ok("invite", json!({"room": room, "node": "bob.os"}))
        .await;
    join(b, &room).await;
    // Messages both ways.
    b.send(&room, "bob says hi").await;
    until_has(a, &room, "bob says hi").await;
    a.send(&room, "alice says hi").await;
    until_has(b, &room, "alice says hi").await;

    bob_proc.kill();
    for i in 1..=20 {
        let m = a.send(&room, &format!("while you were out {i}")).await;
        assert_eq!(m["delivery"], "sent");
    }
    let bob_proc = start_far(bob_home.path(), user_home.path(), "bob.os", &a_addr);
    let b = At::Far(bob_proc.port, bob_home.path());
    let page = until("bob's copy after the restart", || async {
        let page = b.latest(&room, 100).await;
        texts(&page)
            .last()
            .filter(|t| *t == "while you were out 20")
            .map(|_| page.clone())
    })
    .await;
    let got = texts(&page);
    let missed: Vec<&String> = got
        .iter()
        .filter(|t| t.starts_with("while you were out"))
        .collect();
    let expected: Vec<String> = (1..=20)
        .map(|i| format!("while you were out {i}"))
        .collect();
    assert_eq!(missed, expected.iter().collect::<Vec<_>>(), "{page}");
    assert_eq!(&got[..2], ["bob says hi", "alice says hi"], "{page}");
    let all_ids = ids(&page);
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "{page}");
    // bob's unread count holds the 20 he missed (and alice's greeting).
    let summary = b.summary(&room).await.unwrap();
    assert_eq!(summary["unread"], 21, "{summary}");
    drop(bob_proc);
    alice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_the_host_is_stopped_wait_and_arrive_in_order() {
    let a_port = free_port();
    let a_home = TempDir::new("alice.os");
    let a_config = config("alice.os", &a_home, &[], a_port);
    let alice = TestNode::start_with(a_config, a_home).await;
    alice.install(chat_package()).await;
    let a_addr = alice.p2p_addr().await;
    let bob = chat_node("bob.os", &[&a_addr]).await;
    let b = At::Here(&bob);

    let room = create_room(At::Here(&alice), "Ops", "public").await;
    join(b, &room).await;
    b.send(&room, "before").await;
    until_has(At::Here(&alice), &room, "before").await;

    let a_home = alice.stop().await;
    let mut pending = Vec::new();
    for i in 1..=5 {
        let m = b.send(&room, &format!("queued {i}")).await;
        assert_eq!(
            (m["delivery"].clone(), m["id"].clone()),
            (json!("pending"), json!(0)),
            "{m}"
        );
        pending.push(m["client_id"].as_str().unwrap().to_string());
    }
    // Empty and too-long are refused at once, even with the host away.
    assert_eq!(
        b.code("send", json!({"room": room, "text": ""})).await,
        "empty-message"
    );
    // Edits need the host.
    assert_eq!(
        b.code("edit", json!({"room": room, "id": 1, "text": "x"}))
            .await,
        "host-offline"
    );
    let summary = b.summary(&room).await.unwrap();
    assert_eq!(
        (summary["pending"].clone(), summary["host_online"].clone()),
        (json!(5), json!(false))
    );
    // The copy is readable with the host away, pending ones last.
    let page = b.latest(&room, 50).await;
    let t = texts(&page);
    assert_eq!(
        t[t.len() - 6..],
        ["before", "queued 1", "queued 2", "queued 3", "queued 4", "queued 5"]
    );

    let alice = TestNode::start_with(config("alice.os", &a_home, &[], a_port), a_home).await;
    let a = At::Here(&alice);
    let page = until("the 5 queued at alice", || async {
        let page = a.latest(&room, 50).await;
        texts(&page)
            .last()
            .filter(|t| *t == "queued 5")
            .map(|_| page.clone())
    })
    .await;
    let t = texts(&page);
    assert_eq!(
        t[t.len() - 6..],
        ["before", "queued 1", "queued 2", "queued 3", "queued 4", "queued 5"],
        "{page}"
    );
    assert_eq!(
        t.iter().filter(|x| x.starts_with("queued")).count(),
        5,
        "once each: {page}"
    );
    // bob's copy: sent, in the same order, nothing pending.
    until("bob's queue drained", || async {
        let s = b.summary(&room).await?;
        (s["pending"] == 0 && s["host_online"] == true).then_some(())
    })
    .await;
    let mine = until("bob's copy with the 5", || async {
        let page = b.latest(&room, 50).await;
        let sent: Vec<Value> = page["messages"]
            .as_array()?
            .iter()
            .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("queued")))
            .cloned()
            .collect();
        (sent.len() == 5 && sent.iter().all(|m| m["delivery"] == "sent")).then_some(sent)
    })
    .await;
    let client_ids: Vec<&str> = mine
        .iter()
        .map(|m| m["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        client_ids,
        pending.iter().map(String::as_str).collect::<Vec<_>>()
    );
    bob.stop().await;
    alice.stop().await;
}
