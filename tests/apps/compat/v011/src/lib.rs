//! A process built against WIT 0.1.1 (world `process-batch`: `init`,
//! `handle` and `handle-batch`), with wit-bindgen and no SDK, as an app
//! built before 0.1.2 was.

// The generated bindings take many arguments in one import.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ path: "wit", world: "process-batch" });

include!("../../common.rs");

struct Compat;

impl Guest for Compat {
    fn init(our: Address) {
        on_init(our);
    }

    fn handle(event: Event) {
        count_call(false, 1);
        on_event(event, "handle");
    }

    fn handle_batch(events: Vec<Event>) {
        count_call(true, events.len() as u64);
        for event in events {
            on_event(event, "handle-batch");
        }
    }
}

export!(Compat);
