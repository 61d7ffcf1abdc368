//! `echo`: the smallest Hearth app. Its one method answers
//! `{"ok": message}` with the message it was given; any other request
//! comes back as it went, body and blob.

use hearth_sdk::json::Value;
use hearth_sdk::{app, log, Ctx, Incoming, Response};

/// No state to keep.
#[derive(Default)]
pub struct Echo;

#[app(persist = "never")]
impl Echo {
    #[init]
    fn started(&mut self, ctx: &Ctx) {
        log::info!("{} started", ctx.caller());
    }

    /// Answers with the message it was given.
    #[local]
    #[remote]
    fn echo(&self, message: Value) -> Value {
        message
    }

    /// Any request that names no method of this app: answered with its own
    /// body and blob; fire-and-forget messages are logged.
    #[fallback]
    fn mirror(&mut self, mut msg: Incoming) {
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
