// Shared by the compat guests, which are built against frozen copies of
// older WIT versions. Each guest's `wit_bindgen::generate!` brings the same
// paths into scope (`hearth::process::{kernel, types}`, and the world's
// `Address` and `Event` at the top), so this file is
// `include!`d by both.
//
// What it answers (JSON bodies):
// - `{"echo": v}` -> `{"via": export, "echo": v, "our": "node@p:pkg:pub"}`;
// - `{"bump": {}}` -> the count kept in the process's durable state, plus one;
// - `{"seq": n}` (fire-and-forget) -> nothing; counts arrivals and order;
// - `{"stats": {}}` -> what arrived, in which order, through which export.

use std::cell::RefCell;

use hearth::process::kernel;
use hearth::process::types::{Message, Response};
use serde_json::{json, Value};

#[derive(Default)]
struct Seen {
    our: String,
    next_seq: u64,
    out_of_order: u64,
    handle_calls: u64,
    batch_calls: u64,
    largest_batch: u64,
}

thread_local! {
    static SEEN: RefCell<Seen> = RefCell::new(Seen::default());
}

fn address_text(a: &Address) -> String {
    format!(
        "{}@{}:{}:{}",
        a.node, a.process.process, a.process.package, a.process.publisher
    )
}

fn on_init(our: Address) {
    SEEN.with(|s| s.borrow_mut().our = address_text(&our));
}

/// Count one call of `handle` or `handle-batch` carrying `events` events.
fn count_call(batch: bool, events: u64) {
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        if batch {
            s.batch_calls += 1;
            s.largest_batch = s.largest_batch.max(events);
        } else {
            s.handle_calls += 1;
        }
    });
}

fn on_event(event: Event, via: &str) {
    let Event::Message(incoming) = event else {
        return;
    };
    let Message::Request(request) = incoming.message else {
        return;
    };
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return;
    };
    if let Some(seq) = body.get("seq").and_then(Value::as_u64) {
        SEEN.with(|s| {
            let mut s = s.borrow_mut();
            if seq == s.next_seq {
                s.next_seq += 1;
            } else {
                s.out_of_order += 1;
            }
        });
        return;
    }
    let reply = if let Some(echo) = body.get("echo") {
        let our = SEEN.with(|s| s.borrow().our.clone());
        json!({"via": via, "echo": echo, "our": our})
    } else if body.get("bump").is_some() {
        let count = kernel::get_state()
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, u64::from_le_bytes)
            + 1;
        match kernel::set_state(&count.to_le_bytes()) {
            Ok(()) => json!({"count": count}),
            Err(e) => json!({"error": e}),
        }
    } else if body.get("stats").is_some() {
        SEEN.with(|s| {
            let s = s.borrow();
            json!({
                "seen": s.next_seq,
                "out_of_order": s.out_of_order,
                "handle_calls": s.handle_calls,
                "batch_calls": s.batch_calls,
                "largest_batch": s.largest_batch,
            })
        })
    } else {
        json!({"error": "unknown request"})
    };
    if request.expects_response.is_some() {
        let response = Response {
            body: reply.to_string().into_bytes(),
            metadata: None,
        };
        let _ = kernel::send_response(incoming.id, &response, None);
    }
}
