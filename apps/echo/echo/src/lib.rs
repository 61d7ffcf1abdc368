//! `echo`: answers each request with the body (and blob) it received, and
//! logs fire-and-forget messages. The smallest useful Hearth process.

use hearth_sdk::{log, Address, Incoming, Process, Response};

struct Echo;

impl Process for Echo {
    fn init(our: Address) -> Self {
        log::info!("{our} started");
        Echo
    }

    fn handle(&mut self, mut msg: Incoming) {
        if msg.expects_response().is_none() {
            log::info!("{} sent {} bytes", msg.source(), msg.body().len());
            return;
        }
        let id = msg.id();
        let mut reply = Response::new();
        if let Some(blob) = msg.take_blob() {
            reply = reply.blob(blob);
        }
        if let Err(error) = reply.body(msg.into_body()).send(id) {
            log::warn!("could not answer: {error}");
        }
    }
}

hearth_sdk::process!(Echo);
