//! `probe`: the test process of the integration tests. One wasm, many
//! behaviours, chosen by the JSON request body, an object with one key
//! (`{"echo": V}`, `{"ask": {...}}`, ...). See `Command` for the list.

mod bench;
mod relay;
mod rooms;
mod services;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use hearth_sdk::json::{json, Value};
use hearth_sdk::{log, Address, Failure, Incoming, Process, SendError, SpawnOptions};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// Timeout of the probe's own requests when the command gives none.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// A request body the probe understands.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    Echo(Value),
    NeverReply(IgnoredAny),
    Trap(IgnoredAny),
    Spin(IgnoredAny),
    AllocMb(u64),
    Ask(relay::AskArgs),
    AskAsync(relay::AskArgs),
    Tell(relay::TellArgs),
    Forward(relay::TellArgs),
    Blast(relay::BlastArgs),
    Seq(u64),
    Received(IgnoredAny),
    StateSet(Value),
    StateGet(IgnoredAny),
    Spawn(SpawnArgs),
    BenchPing(bench::PingArgs),
    BenchBlast(bench::BlastArgs),
    Kv(services::KvCmd),
    Vfs(services::VfsCmd),
    Timers(Vec<u64>),
    StateBurst(u64),
    Publish(rooms::PublishArgs),
    PublishN(rooms::PublishNArgs),
    Watch(rooms::WatchArgs),
    Unwatch(rooms::UnwatchArgs),
    RoomLog(IgnoredAny),
}

#[derive(Deserialize)]
struct SpawnArgs {
    name: String,
    #[serde(default)]
    public: bool,
    /// The component to run; `/probe.wasm` by default.
    #[serde(default)]
    wasm: Option<String>,
}

/// The persisted state: `{"boots": u64, "value": V, "rooms": [..]}`.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Saved {
    boots: u64,
    value: Value,
    /// Rooms received, with their cursors and deliveries.
    #[serde(default)]
    rooms: Vec<rooms::RoomLog>,
}

/// Arrivals of fire-and-forget `{"seq": n}` messages.
#[derive(Default)]
struct SeqCounter {
    count: u64,
    out_of_order: u64,
    last: Option<u64>,
}

impl SeqCounter {
    fn record(&mut self, n: u64) {
        let expected = self.last.map_or(0, |last| last + 1);
        if n != expected {
            self.out_of_order += 1;
        }
        self.count += 1;
        self.last = Some(n);
    }
}

struct Probe {
    our: Address,
    saved: rooms::Shared,
    /// Outcomes of the resubscriptions made at boot.
    resumes: rooms::Resumes,
    seqs: SeqCounter,
    /// Raw `ask`s in flight: our correlation id -> the asker's request id.
    pending: HashMap<u64, u64>,
}

impl Process for Probe {
    fn init(our: Address) -> Self {
        let mut saved = match hearth_sdk::get_state::<Saved>() {
            Ok(saved) => saved.unwrap_or_default(),
            Err(error) => {
                log::warn!("state unreadable, starting afresh: {error}");
                Saved::default()
            }
        };
        saved.boots += 1;
        if let Err(error) = hearth_sdk::set_state(&saved) {
            log::error!("could not save boot count: {error}");
        }
        let saved = Rc::new(RefCell::new(saved));
        let resumes = rooms::Resumes::default();
        rooms::resubscribe_all(&saved, &resumes);
        Probe {
            our,
            saved,
            resumes,
            seqs: SeqCounter::default(),
            pending: HashMap::new(),
        }
    }

    fn handle(&mut self, msg: Incoming) {
        if msg.is_request() {
            self.request(msg);
        } else if let Some(asker) = self.pending.remove(&msg.id()) {
            relay::answer_ok(asker, &msg);
        } else {
            log::warn!("unexpected response {} from {}", msg.id(), msg.source());
        }
    }

    fn failed(&mut self, failure: Failure) {
        match self.pending.remove(&failure.id()) {
            Some(asker) => relay::answer_failure(asker, &failure),
            None => log::warn!("unexpected failure {}: {}", failure.id(), failure.error()),
        }
    }
}

impl Probe {
    fn request(&mut self, msg: Incoming) {
        if let Some(delivery) = hearth_sdk::rooms::delivery(&msg) {
            return rooms::record(&self.saved, delivery);
        }
        if let Some(join) = hearth_sdk::rooms::join_request(&msg) {
            return rooms::answer_join(&msg, &join);
        }
        let command = match msg.json::<Command>() {
            Ok(command) => command,
            Err(error) => {
                let detail = format!("unknown probe command: {error}");
                return reply_if_asked(&msg, &err_value("bad-request", &detail, None));
            }
        };
        match command {
            Command::Echo(value) => reply_if_asked(&msg, &value),
            Command::NeverReply(_) => {}
            Command::Trap(_) => panic!("probe: trap requested"),
            Command::Spin(_) => loop {
                std::hint::black_box(());
            },
            Command::AllocMb(mb) => reply_if_asked(&msg, &alloc_mb(mb)),
            Command::Ask(args) => self.ask(&msg, args),
            Command::AskAsync(args) => relay::ask_async(&self.our, msg.id(), args),
            Command::Tell(args) => reply_if_asked(&msg, &relay::tell(&self.our, args)),
            Command::Forward(args) => relay::forward(&self.our, msg.id(), args),
            Command::Blast(args) => reply_if_asked(&msg, &relay::blast(&self.our, args)),
            Command::Seq(n) => {
                self.seqs.record(n);
                reply_if_asked(&msg, &json!({"count": self.seqs.count}));
            }
            Command::Received(_) => {
                let seqs = &self.seqs;
                let counts = json!({"count": seqs.count, "out_of_order": seqs.out_of_order, "last": seqs.last});
                reply_if_asked(&msg, &counts);
            }
            Command::StateSet(value) => {
                let mut saved = self.saved.borrow_mut();
                saved.value = value;
                let outcome = match hearth_sdk::set_state(&*saved) {
                    Ok(()) => json!({"ok": true}),
                    Err(error) => err_value("state", &error.to_string(), None),
                };
                reply_if_asked(&msg, &outcome);
            }
            Command::StateGet(_) => reply_if_asked(&msg, &json!(*self.saved.borrow())),
            Command::Spawn(args) => reply_if_asked(&msg, &spawn(args)),
            Command::BenchPing(args) => bench::ping(&self.our, msg.id(), args),
            Command::BenchBlast(args) => bench::blast(&self.our, msg.id(), args),
            Command::Kv(cmd) => services::kv(msg.id(), cmd),
            Command::Vfs(cmd) => services::vfs(msg.id(), cmd),
            Command::Timers(delays) => services::timers(msg.id(), delays),
            Command::StateBurst(count) => reply_if_asked(&msg, &services::state_burst(count)),
            Command::Publish(args) => rooms::publish(msg.id(), args),
            Command::PublishN(args) => rooms::publish_n(msg.id(), args),
            Command::Watch(args) => rooms::watch(&self.saved, msg.id(), args),
            Command::Unwatch(args) => rooms::unwatch(&self.saved, msg.id(), args),
            Command::RoomLog(_) => {
                reply_if_asked(&msg, &rooms::room_log(&self.saved, &self.resumes))
            }
        }
    }

    /// `ask` with the raw API: the response or failure comes back to
    /// `handle` / `failed`, matched to the asker through `pending`.
    fn ask(&mut self, msg: &Incoming, args: relay::AskArgs) {
        match relay::send_ask(&self.our, args) {
            Ok(id) => {
                self.pending.insert(id, msg.id());
            }
            Err(error) => reply(msg.id(), &error),
        }
    }
}

/// Allocates and touches `mb` MiB. Past the node's memory limit the
/// allocation aborts, which traps the process: that is the point.
fn alloc_mb(mb: u64) -> Value {
    let Some(bytes) = usize::try_from(mb)
        .ok()
        .and_then(|mb| mb.checked_mul(1 << 20))
    else {
        return err_value("bad-request", "alloc_mb too large for this target", None);
    };
    let mut block = Vec::new();
    block.resize(bytes, 1u8);
    std::hint::black_box(&block);
    json!({"allocated": mb})
}

fn spawn(args: SpawnArgs) -> Value {
    let wasm = args.wasm.as_deref().unwrap_or("/probe.wasm");
    let options = SpawnOptions::new(wasm).public(args.public);
    match hearth_sdk::spawn(&args.name, options) {
        Ok(id) => json!({"id": id.to_string()}),
        Err(error) => err_value("spawn-failed", &error.to_string(), None),
    }
}

/// `{"err": {"kind": .., "detail": .., "context": ..}}`.
pub(crate) fn err_value(kind: &str, detail: &str, context: Option<&str>) -> Value {
    json!({"err": {"kind": kind, "detail": detail, "context": context}})
}

/// The `err` shape of a send error.
pub(crate) fn send_err_value(error: &SendError, context: Option<&str>) -> Value {
    err_value(error.kind().as_str(), &error.to_string(), context)
}

/// Answers request `asker`, logging (not failing) if that is impossible.
pub(crate) fn reply(asker: u64, value: &Value) {
    if let Err(error) = hearth_sdk::respond_json(asker, value) {
        log::warn!("could not answer request {asker}: {error}");
    }
}

fn reply_if_asked(msg: &Incoming, value: &Value) {
    if msg.expects_response().is_some() {
        reply(msg.id(), value);
    }
}

hearth_sdk::process!(Probe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_counter_counts_gaps_and_a_late_start() {
        let mut seqs = SeqCounter::default();
        for n in [0, 1, 2, 4, 5] {
            seqs.record(n);
        }
        assert_eq!((seqs.count, seqs.out_of_order, seqs.last), (5, 1, Some(5)));
        let mut late = SeqCounter::default();
        late.record(3);
        assert_eq!(late.out_of_order, 1);
    }

    #[test]
    fn commands_parse_from_one_key_objects() {
        let parse = |text: &str| hearth_sdk::json::from_bytes::<Command>(text.as_bytes());
        assert!(matches!(
            parse(r#"{"never_reply": null}"#),
            Ok(Command::NeverReply(_))
        ));
        assert!(matches!(
            parse(r#"{"alloc_mb": 3}"#),
            Ok(Command::AllocMb(3))
        ));
        assert!(matches!(
            parse(r#"{"echo": null}"#),
            Ok(Command::Echo(Value::Null))
        ));
        assert!(parse(r#"{"bogus": 1}"#).is_err());
        assert!(parse(r#"[1, 2]"#).is_err());
    }
}
