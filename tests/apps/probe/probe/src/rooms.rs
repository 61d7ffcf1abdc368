//! Live rooms through `hearth_sdk::rooms`: `publish`, `publish_n`, `watch`,
//! `unwatch` and `room_log` commands; answers to `room_join` (rooms named
//! `private*` are refused); every `room_event` delivery recorded in the
//! durable state before `handle` returns, with the last sequence number
//! seen per room, from which `init` resubscribes after a restart.

use std::cell::RefCell;
use std::rc::Rc;

use hearth_sdk::json::{json, Value};
use hearth_sdk::rooms::{self, RoomDelivery, RoomEvent, RoomsError};
use hearth_sdk::timer::sleep_ms;
use hearth_sdk::{log, Address, Incoming};
use serde::{Deserialize, Serialize};

use crate::{reply, send_err_value, Saved};

/// Attempts of a boot-time resubscription, `RETRY_MS` apart: the owner's
/// node may still be coming back.
const RESUBSCRIBE_ATTEMPTS: u32 = 20;
const RETRY_MS: u64 = 500;

/// What the probe knows of one room it receives: the durable record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomLog {
    owner: String,
    room: String,
    /// Asked for with `watch` (and not `unwatch`ed): resubscribed at boot.
    watching: bool,
    /// The last sequence number seen, the `from` of a resubscription.
    last: Option<u64>,
    /// Every delivery, as it came.
    events: Vec<RoomEvent>,
    /// For each delivery, how many deliveries of any room came before it.
    #[serde(default)]
    arrived: Vec<u64>,
}

/// The state shared by `handle` and the tasks awaiting the hub.
pub(crate) type Shared = Rc<RefCell<Saved>>;

#[derive(Deserialize)]
pub(crate) struct PublishArgs {
    room: String,
    #[serde(default)]
    payload: Value,
}

/// `count` events `{"i": k, "pad": "xx.."}`, k from `base`, each awaited
/// (or all fire-and-forget when `acked` is false).
#[derive(Deserialize)]
pub(crate) struct PublishNArgs {
    room: String,
    count: u64,
    #[serde(default)]
    base: u64,
    #[serde(default)]
    pad: usize,
    #[serde(default = "yes")]
    acked: bool,
    /// Acked publishes to a durable room.
    #[serde(default)]
    durable: bool,
    /// Fire-and-forget only: every other run of [`RUN`] publishes goes to
    /// this room instead (`i` 8..16, 24..32, ...).
    #[serde(default)]
    alternate: Option<String>,
}

/// Publishes in a row to one room before `alternate` switches rooms: a
/// burst, which the hub relays in one message.
const RUN: u64 = 8;

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
pub(crate) struct WatchArgs {
    owner: String,
    room: String,
    #[serde(default)]
    from: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct UnwatchArgs {
    owner: String,
    room: String,
}

/// The hub's own reply shape, `{"Err": ..}`, for an error it sent; the
/// probe's `err` shape for one it did not.
fn error_value(error: &RoomsError) -> Value {
    match error {
        RoomsError::Send(error) => send_err_value(error, None),
        RoomsError::Decode(detail) => crate::err_value("decode", detail, None),
        hub => json!({ "Err": hub }),
    }
}

fn parse_owner(owner: &str) -> Result<Address, Value> {
    owner.parse().map_err(|e: hearth_sdk::AddressError| {
        crate::err_value("bad-address", &e.to_string(), None)
    })
}

fn save(saved: &Saved) {
    if let Err(error) = hearth_sdk::set_state(saved) {
        log::error!("could not save the room log: {error}");
    }
}

fn log_of<'a>(saved: &'a mut Saved, owner: &str, room: &str) -> &'a mut RoomLog {
    let at = saved
        .rooms
        .iter()
        .position(|l| l.owner == owner && l.room == room);
    let at = at.unwrap_or_else(|| {
        saved.rooms.push(RoomLog {
            owner: owner.to_string(),
            room: room.to_string(),
            watching: false,
            last: None,
            events: Vec::new(),
            arrived: Vec::new(),
        });
        saved.rooms.len() - 1
    });
    &mut saved.rooms[at]
}

/// `publish`: one acked publish; answers `{"Ok": {"Published": {"seq"}}}`.
pub(crate) fn publish(asker: u64, args: PublishArgs) {
    hearth_sdk::spawn_task(async move {
        let answer = match rooms::publish_acked(&args.room, &args.payload).await {
            Ok(seq) => json!({"Ok": {"Published": {"seq": seq}}}),
            Err(error) => error_value(&error),
        };
        reply(asker, &answer);
    });
}

/// `publish_n`: answers `{"ok": {"seqs": [first, last]}}` (acked) or
/// `{"ok": {"sent": n}}`, or the error with how many went before it.
pub(crate) fn publish_n(asker: u64, args: PublishNArgs) {
    let pad = "x".repeat(args.pad);
    if !args.acked {
        for i in args.base..args.base.saturating_add(args.count) {
            let room = match &args.alternate {
                Some(other) if (i / RUN) % 2 == 1 => other,
                _ => &args.room,
            };
            if let Err(error) = rooms::publish(room, &json!({"i": i, "pad": pad})) {
                let context = format!("publish {i} of {}", args.count);
                return reply(asker, &send_err_value(&error, Some(&context)));
            }
        }
        return reply(asker, &json!({"ok": {"sent": args.count}}));
    }
    hearth_sdk::spawn_task(async move {
        let mut seqs = Vec::new();
        for i in args.base..args.base.saturating_add(args.count) {
            let payload = json!({"i": i, "pad": pad});
            let published = if args.durable {
                rooms::publish_durable(&args.room, &payload).await
            } else {
                rooms::publish_acked(&args.room, &payload).await
            };
            match published {
                Ok(seq) => seqs.push(seq),
                Err(error) => {
                    return reply(
                        asker,
                        &json!({"published": seqs.len(), "error": error_value(&error)}),
                    )
                }
            }
        }
        let span = json!([seqs.first(), seqs.last()]);
        reply(asker, &json!({"ok": {"seqs": span}}));
    });
}

/// `watch`: subscribes; once joined the room is remembered (with its
/// cursor) before the hub's answer is passed on.
pub(crate) fn watch(shared: &Shared, asker: u64, args: WatchArgs) {
    let owner = match parse_owner(&args.owner) {
        Ok(owner) => owner,
        Err(error) => return reply(asker, &error),
    };
    let shared = shared.clone();
    hearth_sdk::spawn_task(async move {
        let seen_before = events_seen(&shared, &args.owner, &args.room);
        let answer = match rooms::subscribe(&owner, &args.room, args.from).await {
            Ok(joined) => {
                let mut saved = shared.borrow_mut();
                let log = log_of(&mut saved, &args.owner, &args.room);
                log.watching = true;
                // Unless events came before this answer, the cursor is
                // where we asked to start.
                if log.events.len() == seen_before {
                    log.last = args.from.or(joined.next.checked_sub(1));
                }
                save(&saved);
                json!({"Ok": {"Joined": joined}})
            }
            Err(error) => error_value(&error),
        };
        reply(asker, &answer);
    });
}

fn events_seen(shared: &Shared, owner: &str, room: &str) -> usize {
    let saved = shared.borrow();
    saved
        .rooms
        .iter()
        .find(|l| l.owner == owner && l.room == room)
        .map_or(0, |l| l.events.len())
}

/// `unwatch`: unsubscribes and forgets the watch (the log stays).
pub(crate) fn unwatch(shared: &Shared, asker: u64, args: UnwatchArgs) {
    let owner = match parse_owner(&args.owner) {
        Ok(owner) => owner,
        Err(error) => return reply(asker, &error),
    };
    let shared = shared.clone();
    hearth_sdk::spawn_task(async move {
        let answer = match rooms::unsubscribe(&owner, &args.room).await {
            Ok(()) => {
                let mut saved = shared.borrow_mut();
                log_of(&mut saved, &args.owner, &args.room).watching = false;
                save(&saved);
                json!({"Ok": "Left"})
            }
            Err(error) => error_value(&error),
        };
        reply(asker, &answer);
    });
}

/// Records a delivery and its cursor durably. Duplicates are recorded as
/// they came: finding them is the tests' job.
pub(crate) fn record(shared: &Shared, delivery: RoomDelivery) {
    let owner = delivery.owner.to_string();
    let mut saved = shared.borrow_mut();
    let before: usize = saved.rooms.iter().map(|l| l.events.len()).sum();
    let log = log_of(&mut saved, &owner, &delivery.room);
    log.arrived.push(before as u64);
    match &delivery.event {
        RoomEvent::Event { seq, .. } => log.last = Some(*seq),
        RoomEvent::Gap { next } => {
            log.last = log.last.max(next.checked_sub(1));
        }
        // A new incarnation of the room numbers from 1 again.
        RoomEvent::Ended => log.last = Some(0),
        _ => {}
    }
    log.events.push(delivery.event);
    save(&saved);
}

/// The owner's answer to a join: `private*` rooms are refused.
pub(crate) fn answer_join(msg: &Incoming, join: &rooms::RoomJoin) {
    let sent = if join.room.starts_with("private") {
        let message = format!("{} may not join {}", join.subscriber, join.room);
        rooms::refuse(msg.id(), "forbidden", &message)
    } else {
        rooms::admit(msg.id(), &json!({"welcome": join.room}))
    };
    if let Err(error) = sent {
        log::warn!("could not answer the join of {}: {error}", join.subscriber);
    }
}

/// `room_log`: `{"rooms": [RoomLog..], "resumes": [..]}`.
pub(crate) fn room_log(shared: &Shared, resumes: &Resumes) -> Value {
    json!({"rooms": shared.borrow().rooms, "resumes": *resumes.borrow()})
}

/// Outcomes of the boot-time resubscriptions, for `room_log`.
pub(crate) type Resumes = Rc<RefCell<Vec<Value>>>;

/// At boot: resubscribe every watched room from its saved cursor,
/// retrying while the hub cannot reach the owner.
pub(crate) fn resubscribe_all(shared: &Shared, resumes: &Resumes) {
    let watched: Vec<(String, String, Option<u64>)> = shared
        .borrow()
        .rooms
        .iter()
        .filter(|l| l.watching)
        .map(|l| (l.owner.clone(), l.room.clone(), l.last))
        .collect();
    for (owner_text, room, from) in watched {
        let Ok(owner) = owner_text.parse::<Address>() else {
            log::warn!("saved owner {owner_text} unreadable");
            continue;
        };
        let resumes = resumes.clone();
        hearth_sdk::spawn_task(async move {
            let mut attempt = 1;
            let outcome = loop {
                match rooms::subscribe(&owner, &room, from).await {
                    Ok(joined) => break json!({"Ok": {"Joined": joined}}),
                    Err(error) if attempt >= RESUBSCRIBE_ATTEMPTS => break error_value(&error),
                    Err(error) => log::info!("resubscribing {owner_text}/{room}: {error}"),
                }
                attempt += 1;
                if let Err(error) = sleep_ms(RETRY_MS).await {
                    break json!({"timer": error.to_string()});
                }
            };
            resumes.borrow_mut().push(json!({
                "owner": owner_text, "room": room, "from": from,
                "attempts": attempt, "outcome": outcome,
            }));
        });
    }
}
