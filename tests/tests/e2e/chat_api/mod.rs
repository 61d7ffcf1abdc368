//! The chat app's API across real nodes: every content rule and role
//! check, pagination boundaries, replies, edits, deletes, reactions,
//! mentions and unread counts, attachments fetched from the sender's node,
//! a member node killed with SIGKILL catching up in order, and messages
//! queued while the host is stopped, delivered in order when it returns.
//!
//! Calls go through each node's admin injector, as `kit i` sends them;
//! the browser reaches the same methods over HTTP. `messages.rs`:
//! replies, edits, deletes, reactions, mentions and files across nodes;
//! `restart.rs`: nodes killed or stopped mid-conversation; `generated.rs`:
//! the committed generated API files match the built component.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

mod generated;
mod messages;
mod restart;

/// How long a test waits for something to happen across nodes.
const WITHIN: Duration = Duration::from_secs(90);
const CHAT: &str = "chat:chat:sys";

fn chat_package() -> Vec<hearth::api::PackageFile> {
    built_package("apps/chat", "chat.wasm")
}

fn config(name: &str, home: &TempDir, bootstrap: &[&str], p2p_port: u16) -> hearth::NodeConfig {
    let mut config = test_config(home.path(), name);
    config.net.bootstrap = bootstrap.iter().map(|s| s.to_string()).collect();
    config.net.port = p2p_port;
    // Room for a 2 MiB attachment in base64 and the calls' handling time
    // on a loaded machine.
    config.limits.max_message_bytes = 8 * 1024 * 1024;
    config.limits.max_call_time = Duration::from_secs(5);
    config
}

async fn chat_node(name: &str, bootstrap: &[&str]) -> TestNode {
    let home = TempDir::new(name);
    let n = TestNode::start_with(config(name, &home, bootstrap, 0), home).await;
    n.install(chat_package()).await;
    n
}

/// A chat process to call: in this test process, or in a `hearth` child
/// (through its admin API).
#[derive(Clone, Copy)]
enum At<'a> {
    Here(&'a TestNode),
    Far(u16, &'a Path),
}

impl At<'_> {
    /// Calls `method`: `Ok(value)` or `Err({code, message})`.
    async fn call(self, method: &str, args: Value) -> Result<Value, Value> {
        let body = json!({ method: args });
        let reply = match self {
            At::Here(n) => n
                .ask_within(CHAT, body, Duration::from_secs(60))
                .await
                .unwrap_or_else(|e| panic!("{method}: {e}")),
            At::Far(port, home) => far_call(port, home, body).await,
        };
        match (reply.get("ok"), reply.get("error")) {
            (Some(ok), _) => Ok(ok.clone()),
            (_, Some(error)) => Err(error.clone()),
            _ => panic!("{method}: not an envelope: {reply}"),
        }
    }

    async fn ok(self, method: &str, args: Value) -> Value {
        self.call(method, args.clone())
            .await
            .unwrap_or_else(|e| panic!("{method} {args}: {e}"))
    }

    /// The error code of a call that must fail.
    async fn code(self, method: &str, args: Value) -> String {
        match self.call(method, args.clone()).await {
            Ok(v) => panic!("{method} {args} succeeded: {v}"),
            Err(e) => e["code"].as_str().unwrap_or_default().to_string(),
        }
    }

    async fn send(self, room: &str, text: &str) -> Value {
        self.ok("send", json!({"room": room, "text": text})).await
    }

    /// The latest page of `room`.
    async fn latest(self, room: &str, limit: u32) -> Value {
        self.page(room, limit, None).await.value
    }

    /// The page of `room`'s history before message `before` (the newest
    /// page with `None`), at most `limit` messages.
    async fn page(self, room: &str, limit: u32, before: Option<u64>) -> Page {
        let value = self
            .ok(
                "messages",
                json!({"room": room, "limit": limit, "before_id": before}),
            )
            .await;
        Page {
            ids: ids(&value),
            has_more: value["has_more"].as_bool().expect("has_more"),
            value,
        }
    }

    async fn summary(self, room: &str) -> Option<Value> {
        let rooms = self.ok("rooms", json!({})).await;
        rooms
            .as_array()
            .and_then(|r| r.iter().find(|s| s["address"] == room).cloned())
    }
}

/// Calls the chat of a `hearth` child through its admin API, retrying
/// while the process is not running yet (the node is booting).
async fn far_call(port: u16, home: &Path, body: Value) -> Value {
    let secret = std::fs::read_to_string(home.join(hearth::api::SECRET_FILE)).expect("secret");
    let t = Instant::now();
    loop {
        let (secret, body) = (secret.clone(), body.clone());
        let (status, reply) = tokio::task::spawn_blocking(move || {
            let request = hearth::api::InjectRequest {
                target: CHAT.into(),
                body,
                timeout_ms: Some(60_000),
                non_block: false,
            };
            let url = format!("http://127.0.0.1:{port}{}", hearth::api::MESSAGE_PATH);
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut response = agent
                .post(&url)
                .header(hearth::api::SECRET_HEADER, secret.trim())
                .send_json(&request)
                .expect("admin message");
            let status = response.status().as_u16();
            let reply: Value = response.body_mut().read_json().expect("json");
            (status, reply)
        })
        .await
        .expect("blocking call");
        if status == 200 {
            let reply: hearth::api::InjectResponse =
                serde_json::from_value(reply).expect("an inject response");
            return reply.body.expect("a reply");
        }
        assert!(
            reply["kind"] == "unknown-process" && t.elapsed() < WITHIN,
            "admin message: {status} {reply}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `check` gives a value.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(t.elapsed() < WITHIN, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Joins `room` from `at`, retrying while the host is not reachable yet.
async fn join(at: At<'_>, room: &str) -> Value {
    until(&format!("joining {room}"), || async {
        match at.call("join", json!({"address": room})).await {
            Ok(summary) => Some(summary),
            Err(e) if e["code"] == "host-offline" => None,
            Err(e) => panic!("join {room}: {e}"),
        }
    })
    .await
}

/// Creates a room at `at`; returns its address.
async fn create_room(at: At<'_>, name: &str, kind: &str) -> String {
    let room = at
        .ok("create_room", json!({"name": name, "kind": kind}))
        .await;
    room["address"]
        .as_str()
        .unwrap_or_else(|| panic!("create_room gave no address: {room}"))
        .to_string()
}

/// alice.os with the chat app, and bob.os bootstrapped from her.
async fn alice_and_bob() -> (TestNode, TestNode) {
    let alice = chat_node("alice.os", &[]).await;
    let a_addr = alice.p2p_addr().await;
    let bob = chat_node("bob.os", &[&a_addr]).await;
    (alice, bob)
}

/// One page of a room's history: the reply, its message ids (oldest
/// first) and whether older messages remain.
struct Page {
    value: Value,
    ids: Vec<u64>,
    has_more: bool,
}

impl Page {
    /// Asserts it holds `count` messages and says `has_more`.
    fn holds(self, count: usize, has_more: bool) -> Self {
        assert_eq!(
            (self.ids.len(), self.has_more),
            (count, has_more),
            "page: {}",
            self.value
        );
        self
    }
}

fn texts(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["kind"] != "system")
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn ids(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_u64().expect("id"))
        .collect()
}

/// Waits until `at`'s copy of `room` has a non-system message `text`.
async fn until_has(at: At<'_>, room: &str, text: &str) -> Value {
    until(&format!("`{text}` in {room}"), || async {
        let page = at.latest(room, 100).await;
        page["messages"]
            .as_array()?
            .iter()
            .find(|m| m["text"] == text && m["delivery"] == "sent")
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_rules_roles_and_membership_are_checked_at_the_host() {
    let alice = chat_node("alice.os", &[]).await;
    let a_addr = alice.p2p_addr().await;
    let bob = chat_node("bob.os", &[&a_addr]).await;
    let carol = chat_node("carol.os", &[&a_addr]).await;
    let (a, b, c) = (At::Here(&alice), At::Here(&bob), At::Here(&carol));

    let general = a
        .ok("create_room", json!({"name": "General", "kind": "public"}))
        .await;
    let room = general["address"].as_str().unwrap().to_string();
    assert!(room.ends_with("@alice.os"), "{general}");
    assert_eq!(general["role"], "owner");
    assert_eq!(
        a.code("create_room", json!({"name": "  ", "kind": "public"}))
            .await,
        "bad-request"
    );

    // Content rules, on the host's own node and from a member's.
    assert_eq!(
        a.code("send", json!({"room": room, "text": " \n "})).await,
        "empty-message"
    );
    assert_eq!(
        a.code("send", json!({"room": room, "text": "x".repeat(4001)}))
            .await,
        "too-long"
    );
    let longest = a.send(&room, &"é".repeat(4000)).await;
    assert_eq!(longest["delivery"], "sent", "{longest}");
    assert_eq!(
        a.code("send", json!({"room": "nope-1@alice.os", "text": "hi"}))
            .await,
        "unknown-room"
    );
    assert_eq!(
        a.code("send", json!({"room": "not an address", "text": "hi"}))
            .await,
        "unknown-room"
    );

    // Joining: unknown rooms, public rooms, private rooms need an invitation.
    assert_eq!(
        b.code("join", json!({"address": "nope-1@alice.os"})).await,
        "unknown-room"
    );
    let joined = join(b, &room).await;
    assert_eq!(joined["role"], "member", "{joined}");
    assert_eq!(
        b.code("send", json!({"room": room, "text": ""})).await,
        "empty-message"
    );
    assert_eq!(
        b.code("send", json!({"room": room, "text": "y".repeat(4001)}))
            .await,
        "too-long"
    );
    let hello = b.send(&room, "hello from bob").await;
    assert_eq!(hello["delivery"], "sent", "{hello}");
    until_has(a, &room, "hello from bob").await;

    let private = a
        .ok(
            "create_room",
            json!({"name": "Secret plans", "kind": "private"}),
        )
        .await;
    let secret = private["address"].as_str().unwrap().to_string();
    assert_eq!(
        c.code("join", json!({"address": secret})).await,
        "not-invited"
    );
    // Not a member of the room: no invitations from carol's node.
    assert_eq!(
        c.code("invite", json!({"room": secret, "node": "bob.os"}))
            .await,
        "unknown-room"
    );
    a.ok("invite", json!({"room": secret, "node": "bob.os"}))
        .await;
    // bob hears of the invitation, then joins.
    until("bob's invitation", || async {
        b.summary(&secret)
            .await
            .filter(|s| s["role"].is_null() && s["invited_by"] == "alice.os")
    })
    .await;
    assert_eq!(
        b.code("send", json!({"room": secret, "text": "too early"}))
            .await,
        "not-member"
    );
    join(b, &secret).await;

    // Roles: a member may not invite, remove, rename or change roles.
    assert_eq!(
        b.code("invite", json!({"room": secret, "node": "carol.os"}))
            .await,
        "forbidden"
    );
    assert_eq!(
        b.code("rename", json!({"room": secret, "name": "Mine"}))
            .await,
        "forbidden"
    );
    assert_eq!(
        b.code("remove_member", json!({"room": secret, "node": "alice.os"}))
            .await,
        "forbidden"
    );
    assert_eq!(
        b.code(
            "set_role",
            json!({"room": secret, "node": "bob.os", "role": "admin"})
        )
        .await,
        "forbidden"
    );
    // The owner makes bob an admin: he may invite and rename, not remove
    // the owner nor change roles.
    a.ok(
        "set_role",
        json!({"room": secret, "node": "bob.os", "role": "admin"}),
    )
    .await;
    until("bob is admin", || async {
        b.summary(&secret).await.filter(|s| s["role"] == "admin")
    })
    .await;
    b.ok("rename", json!({"room": secret, "name": "Open plans"}))
        .await;
    until("the new name at alice", || async {
        a.summary(&secret)
            .await
            .filter(|s| s["name"] == "Open plans")
    })
    .await;
    assert_eq!(
        b.code("remove_member", json!({"room": secret, "node": "alice.os"}))
            .await,
        "forbidden"
    );
    assert_eq!(
        b.code(
            "set_role",
            json!({"room": secret, "node": "alice.os", "role": "member"})
        )
        .await,
        "forbidden"
    );
    b.ok("invite", json!({"room": secret, "node": "carol.os"}))
        .await;
    join(c, &secret).await;
    let members = a.ok("members", json!({"room": secret})).await;
    let mut nodes: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["alice.os", "bob.os", "carol.os"], "{members}");

    // Only its author edits a message; an admin may delete anyone's.
    let carols = c.send(&secret, "carol was here").await;
    let carol_id = carols["id"].as_u64().expect("sent at once");
    assert_eq!(
        b.code(
            "edit",
            json!({"room": secret, "id": carol_id, "text": "bob was here"})
        )
        .await,
        "not-yours"
    );
    assert_eq!(
        b.code("edit", json!({"room": secret, "id": 999_999, "text": "x"}))
            .await,
        "not-found"
    );
    let gone = b
        .ok("delete_message", json!({"room": secret, "id": carol_id}))
        .await;
    assert_eq!(
        (gone["deleted"].clone(), gone["text"].clone()),
        (json!(true), json!(""))
    );

    // An admin removes carol: her node learns it and forgets the room; the
    // host refuses her.
    b.ok("remove_member", json!({"room": secret, "node": "carol.os"}))
        .await;
    until("carol's room gone", || async {
        c.summary(&secret).await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        c.code("send", json!({"room": secret, "text": "let me in"}))
            .await,
        "unknown-room"
    );
    assert_eq!(
        c.code("join", json!({"address": secret})).await,
        "not-invited"
    );

    // The rate limit: 30 messages a minute per user, then `rate-limited`:
    // the refused message comes back failed, kept on carol's node only.
    join(c, &room).await;
    let mut sent = 0;
    let refused = loop {
        let m = c.send(&room, &format!("n{sent}")).await;
        if m["delivery"] == "failed" {
            break m;
        }
        assert_eq!(m["delivery"], "sent", "{m}");
        sent += 1;
        assert!(sent <= 30, "more than 30 messages a minute went through");
    };
    // carol sent one message to this host a moment ago (into the other
    // room): 29 more fit in the minute, or 30 if that minute has passed.
    assert_eq!(refused["error"]["code"], "rate-limited", "{refused}");
    // The wait the host named comes with it, for the page to count down:
    // within the minute, and what the words say.
    let retry_ms = refused["error"]["retry_ms"].as_u64().expect("retry_ms");
    assert!((1..=60_000).contains(&retry_ms), "{refused}");
    let said = format!("try again in {} s", retry_ms.div_ceil(1000));
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.ends_with(&said), "{refused}");
    assert!(sent == 29 || sent == 30, "{sent} messages before the limit");
    let refused_text = format!("n{sent}");
    let client_id = refused["client_id"].as_str().expect("a client id");
    // Not stored by the host, not pending; once in carol's list, as failed.
    let hosted = a.latest(&room, 100).await;
    assert!(!texts(&hosted).contains(&refused_text), "{hosted}");
    assert_eq!(c.summary(&room).await.unwrap()["pending"], 0);
    let shown = c.latest(&room, 100).await;
    let copies: Vec<&Value> = shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["text"] == refused_text.as_str())
        .collect();
    assert_eq!(copies.len(), 1, "{shown}");
    assert_eq!(copies[0]["delivery"], "failed");
    // A retry within the minute is refused again: the same message.
    let again = c
        .ok("retry", json!({"room": room, "client_id": client_id}))
        .await;
    assert_eq!(
        (
            &again["client_id"],
            &again["delivery"],
            &again["error"]["code"]
        ),
        (&json!(client_id), &json!("failed"), &json!("rate-limited")),
        "{again}"
    );
    // Discarded, it is gone.
    c.ok("discard", json!({"room": room, "client_id": client_id}))
        .await;
    let shown = c.latest(&room, 100).await;
    assert!(!texts(&shown).contains(&refused_text), "{shown}");
    assert_eq!(
        c.code("discard", json!({"room": room, "client_id": client_id}))
            .await,
        "not-found"
    );

    // Leaving: the owner stays; bob's copy goes.
    b.ok("leave", json!({"room": room})).await;
    assert!(b.summary(&room).await.is_none());
    assert_eq!(
        b.code(
            "messages",
            json!({"room": room, "limit": 10, "before_id": null})
        )
        .await,
        "unknown-room"
    );
    for n in [carol, bob, alice] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_at_their_boundaries_on_the_host_and_a_member_copy() {
    let (alice, bob) = alice_and_bob().await;
    let (a, b) = (At::Here(&alice), At::Here(&bob));
    let room = create_room(a, "History", "public").await;
    // 120 messages, imported by the host's admin (no rate limit).
    let all: Vec<String> = (1..=120).map(|i| format!("m{i:03}")).collect();
    a.ok("import", json!({"room": room, "texts": all})).await;
    assert_eq!(
        b.code("import", json!({"room": room, "texts": ["x"]}))
            .await,
        "bad-request"
    );
    join(b, &room).await;
    // bob's copy catches up with the whole history through host_sync.
    until("bob's copy of 120 messages", || async {
        let page = b.latest(&room, 100).await;
        texts(&page).last().filter(|t| *t == "m120").map(|_| ())
    })
    .await;

    for at in [a, b] {
        for limit in [0, 101] {
            assert_eq!(
                at.code(
                    "messages",
                    json!({"room": room, "limit": limit, "before_id": null})
                )
                .await,
                "bad-request"
            );
        }
        // Newest first by pages of 50: 121 messages (120 and bob's
        // "joined" notice) are 50, 50, then the last 21 and no more.
        let first = at.page(&room, 50, None).await.holds(50, true);
        assert_eq!(
            first.value["messages"][49]["kind"], "system",
            "{}",
            first.value
        );
        let second = at.page(&room, 50, Some(first.ids[0])).await.holds(50, true);
        let before = second.ids[0];
        let third = at.page(&room, 50, Some(before)).await.holds(21, false);
        let mut all = texts(&third.value);
        all.extend(texts(&second.value));
        all.extend(texts(&first.value));
        let expected: Vec<String> = (1..=120).map(|i| format!("m{i:03}")).collect();
        assert_eq!(all, expected);
        // Exactly `limit` left before an id: has_more is false; one less:
        // true.
        at.page(&room, 21, Some(before)).await.holds(21, false);
        at.page(&room, 20, Some(before)).await.holds(20, true);
        // Before the first id, or id 0, there is nothing.
        at.page(&room, 10, Some(third.ids[0])).await.holds(0, false);
        at.page(&room, 10, Some(0)).await.holds(0, false);
        // Ids increase down the history, on every page and across them.
        let page_ids = [third.ids, second.ids, first.ids].concat();
        assert!(page_ids.windows(2).all(|w| w[0] < w[1]));
    }
    bob.stop().await;
    alice.stop().await;
}
