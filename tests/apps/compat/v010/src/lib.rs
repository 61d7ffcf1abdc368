//! A process built against WIT 0.1.0 (world `process`: `init` and `handle`
//! only), with wit-bindgen and no SDK, as an app built before 0.1.1 was.

// The generated bindings take many arguments in one import.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ path: "wit", world: "process" });

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
}

export!(Compat);
