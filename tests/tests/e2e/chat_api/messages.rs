//! Chat messages across two nodes: a direct room, replies, edits, deletes,
//! reactions, mentions and unread counts, and an attachment fetched from
//! the sender's node.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_edits_deletes_reactions_mentions_and_files_reach_the_other_node() {
    let (alice, bob) = alice_and_bob().await;
    let (a, b) = (At::Here(&alice), At::Here(&bob));

    // A direct room: opened by alice, joined by bob's node when told.
    let dm = a.ok("open_direct", json!({"node": "bob.os"})).await;
    assert_eq!(
        (dm["kind"].clone(), dm["peer"].clone()),
        (json!("direct"), json!("bob.os"))
    );
    let dm_room = dm["address"].as_str().unwrap().to_string();
    until("bob in the direct room", || async {
        b.summary(&dm_room).await.filter(|s| s["role"] == "member")
    })
    .await;
    assert_eq!(
        a.ok("open_direct", json!({"node": "bob.os"})).await["address"],
        dm_room.as_str(),
        "one direct room per pair"
    );
    assert_eq!(
        a.code("invite", json!({"room": dm_room, "node": "carol.os"}))
            .await,
        "forbidden"
    );

    let room = create_room(a, "Team", "public").await;
    join(b, &room).await;
    let first = a.send(&room, "first, from alice").await;
    let first_id = first["id"].as_u64().unwrap();
    until_has(b, &room, "first, from alice").await;
    let bob_unread = b.summary(&room).await.unwrap();
    assert!(bob_unread["unread"].as_u64().unwrap() >= 1, "{bob_unread}");

    // A reply with a mention of alice: highlighted and counted for her.
    let reply = b
        .ok(
            "send",
            json!({"room": room, "text": "hi @alice.os, see above", "reply_to": first_id}),
        )
        .await;
    assert_eq!(reply["mentions"], json!(["alice.os"]), "{reply}");
    assert_eq!(reply["reply_to"], first_id);
    let at_alice = until_has(a, &room, "hi @alice.os, see above").await;
    assert_eq!(at_alice["reply_to"], first_id);
    let summary = a.summary(&room).await.unwrap();
    assert_eq!(
        (summary["unread"].clone(), summary["mentions"].clone()),
        (json!(1), json!(1))
    );
    let read = a
        .ok("mark_read", json!({"room": room, "id": at_alice["id"]}))
        .await;
    assert_eq!(
        (read["unread"].clone(), read["mentions"].clone()),
        (json!(0), json!(0))
    );
    // A reply to no message: the host refuses it; bob's node keeps it as
    // failed until he discards it.
    let orphan = b
        .ok(
            "send",
            json!({"room": room, "text": "x", "reply_to": 999_999}),
        )
        .await;
    assert_eq!(
        (&orphan["delivery"], &orphan["error"]["code"]),
        (&json!("failed"), &json!("not-found")),
        "{orphan}"
    );
    b.ok(
        "discard",
        json!({"room": room, "client_id": orphan["client_id"]}),
    )
    .await;

    // Edit, reaction, delete: each shows on the other node.
    let reply_id = reply["id"].as_u64().unwrap();
    let version = |m: &Value| m["version"].as_u64().unwrap_or_default();
    let edited = b
        .ok(
            "edit",
            json!({"room": room, "id": reply_id, "text": "hi @alice.os (edited)"}),
        )
        .await;
    until("the edit at alice", || async {
        let page = a.latest(&room, 20).await;
        page["messages"]
            .as_array()?
            .iter()
            .find(|m| {
                m["id"] == reply_id
                    && m["text"] == "hi @alice.os (edited)"
                    && m["edited_at"].is_u64()
            })
            .map(|_| ())
    })
    .await;
    let reacted = a
        .ok(
            "react",
            json!({"room": room, "id": reply_id, "emoji": "👍"}),
        )
        .await;
    // Each change is a newer version of the message (its event number).
    assert!(
        version(&reacted) > version(&edited) && version(&edited) > reply_id,
        "{edited} then {reacted}"
    );
    until("the reaction at bob", || async {
        let page = b.latest(&room, 20).await;
        page["messages"]
            .as_array()?
            .iter()
            .find(|m| {
                m["id"] == reply_id
                    && m["reactions"]["👍"] == json!(["alice.os"])
                    && version(m) == version(&reacted)
            })
            .map(|_| ())
    })
    .await;
    let undone = a
        .ok(
            "react",
            json!({"room": room, "id": reply_id, "emoji": "👍"}),
        )
        .await;
    assert_eq!(
        undone["reactions"],
        json!({}),
        "a second reaction takes it back"
    );
    assert!(version(&undone) > version(&reacted), "{undone}");
    // Two members react at once: both reactions land (each is read and
    // changed under the room's turn).
    let (_, _) = tokio::join!(
        a.ok(
            "react",
            json!({"room": room, "id": reply_id, "emoji": "🎉"})
        ),
        b.ok(
            "react",
            json!({"room": room, "id": reply_id, "emoji": "👀"})
        ),
    );
    until("both reactions at alice", || async {
        let page = a.latest(&room, 20).await;
        page["messages"]
            .as_array()?
            .iter()
            .find(|m| {
                m["id"] == reply_id
                    && m["reactions"] == json!({"🎉": ["alice.os"], "👀": ["bob.os"]})
            })
            .map(|_| ())
    })
    .await;
    assert_eq!(
        a.code("react", json!({"room": room, "id": reply_id, "emoji": ""}))
            .await,
        "bad-request"
    );
    b.ok("delete_message", json!({"room": room, "id": reply_id}))
        .await;
    until("the delete at alice", || async {
        let page = a.latest(&room, 20).await;
        page["messages"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == reply_id && m["deleted"] == true && m["text"] == "")
            .map(|_| ())
    })
    .await;
    assert_eq!(
        a.code(
            "delete_message",
            json!({"room": room, "id": first_id + 1_000})
        )
        .await,
        "not-found"
    );

    // A file: stored on bob's node, fetched by alice from it, then cached.
    let png: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let data = base64(&png);
    let file = b
        .ok(
            "upload",
            json!({"name": "pic.png", "mime": "image/png", "data": data}),
        )
        .await;
    assert_eq!(
        (file["node"].clone(), file["size"].clone()),
        (json!("bob.os"), json!(3000))
    );
    let big = base64(&vec![0u8; 2 * 1024 * 1024 + 1]);
    assert_eq!(
        b.code(
            "upload",
            json!({"name": "big.bin", "mime": "application/octet-stream", "data": big})
        )
        .await,
        "too-large"
    );
    let shared = b
        .ok(
            "send",
            json!({"room": room, "text": "", "attachment": file}),
        )
        .await;
    assert_eq!(shared["kind"], "image", "{shared}");
    let second = b
        .ok(
            "upload",
            json!({"name": "never-fetched.txt", "mime": "text/plain", "data": base64(b"later")}),
        )
        .await;
    b.ok(
        "send",
        json!({"room": room, "text": "a note", "attachment": second}),
    )
    .await;
    until_has(a, &room, "a note").await;
    let fetched = a
        .ok("attachment", json!({"node": "bob.os", "id": file["id"]}))
        .await;
    assert_eq!(fetched["data"], data);
    assert_eq!(fetched["attachment"]["mime"], "image/png");
    // A file that was never sent is not served to others.
    let unsent = b
        .ok(
            "upload",
            json!({"name": "private.txt", "mime": "text/plain", "data": base64(b"mine")}),
        )
        .await;
    assert_eq!(
        a.code("attachment", json!({"node": "bob.os", "id": unsent["id"]}))
            .await,
        "not-found"
    );

    // bob's node stops: the cached file still shows, the other is
    // `sender-offline`, and alice's sends to her own room go on.
    bob.stop().await;
    let cached = a
        .ok("attachment", json!({"node": "bob.os", "id": file["id"]}))
        .await;
    assert_eq!(cached["data"], data);
    let code = a
        .code("attachment", json!({"node": "bob.os", "id": second["id"]}))
        .await;
    assert_eq!(code, "sender-offline");
    a.send(&room, "bob is away").await;
    alice.stop().await;
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
