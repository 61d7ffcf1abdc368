//! Commands that message other processes: `ask` (raw API), `ask_async`
//! (the SDK's `ask().await`), `tell` and `blast` (fire-and-forget), and
//! `forward` (the duty to answer handed on with `inherit`).

use hearth_sdk::json::{json, to_value_lossy, Value};
use hearth_sdk::{Address, Failure, Incoming, Request, SendError, SendErrorKind};
use serde::Deserialize;

use crate::{reply, send_err_value, DEFAULT_TIMEOUT_MS};

#[derive(Deserialize)]
pub(crate) struct AskArgs {
    target: String,
    #[serde(default)]
    body: Value,
    timeout_ms: Option<u64>,
    context: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct TellArgs {
    target: String,
    #[serde(default)]
    body: Value,
}

#[derive(Deserialize)]
pub(crate) struct BlastArgs {
    target: String,
    count: u64,
}

/// Parses `node@p:k:pub`, or `p:k:pub` on our node.
pub(crate) fn resolve(our: &Address, target: &str) -> Result<Address, SendError> {
    Address::parse_relative(target, our.node())
        .map_err(|error| SendError::new(SendErrorKind::BadAddress, our.clone(), error.to_string()))
}

/// The body `{"seq": i}`.
pub(crate) fn seq_body(i: u64) -> Vec<u8> {
    format!("{{\"seq\":{i}}}").into_bytes()
}

fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

/// Sends the `ask` request with the context bytes `context` (UTF-8). On an
/// immediate failure returns the `err` reply (with a null context).
pub(crate) fn send_ask(our: &Address, args: AskArgs) -> Result<u64, Value> {
    let target = resolve(our, &args.target).map_err(|e| send_err_value(&e, None))?;
    let mut request = Request::to(target)
        .json(&args.body)
        .timeout_ms(args.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
    if let Some(context) = args.context {
        request = request.context(context.into_bytes());
    }
    request.send().map_err(|e| send_err_value(&e, None))
}

/// Answers `asker` with a response to a raw `ask`, reporting the context
/// the node handed back.
pub(crate) fn answer_ok(asker: u64, response: &Incoming) {
    let context = text(response.context());
    reply(
        asker,
        &json!({"ok": to_value_lossy(response.body()), "context": context}),
    );
}

/// Answers `asker` with the failure of a raw `ask`, reporting the context
/// the failure event handed back.
pub(crate) fn answer_failure(asker: u64, failure: &Failure) {
    let context = text(failure.context());
    reply(asker, &send_err_value(failure.error(), context.as_deref()));
}

/// `ask_async`: the same exchange through `ask().await` in a task, which
/// answers `asker` after the await.
pub(crate) fn ask_async(our: &Address, asker: u64, args: AskArgs) {
    let target = match resolve(our, &args.target) {
        Ok(target) => target,
        Err(error) => return reply(asker, &send_err_value(&error, None)),
    };
    let mut request = Request::to(target)
        .json(&args.body)
        .timeout_ms(args.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
    if let Some(context) = &args.context {
        request = request.context(context.clone().into_bytes());
    }
    let context = args.context;
    let ask = request.ask();
    let failed_at_once = ask.id().is_none();
    hearth_sdk::spawn_task(async move {
        let answer = match ask.await {
            Ok(response) => json!({"ok": to_value_lossy(response.body()), "context": context}),
            Err(error) if failed_at_once => send_err_value(&error, None),
            Err(error) => send_err_value(&error, context.as_deref()),
        };
        reply(asker, &answer);
    });
}

/// `tell`: one fire-and-forget request.
pub(crate) fn tell(our: &Address, args: TellArgs) -> Value {
    let sent = resolve(our, &args.target).and_then(|t| Request::to(t).json(&args.body).send());
    match sent {
        Ok(_) => json!({"sent": true}),
        Err(error) => send_err_value(&error, None),
    }
}

/// `forward`: hand `body` on to `target` with `inherit` and no timeout of
/// our own, so `target` answers our asker in our place. Only a send
/// refused at once is answered here.
pub(crate) fn forward(our: &Address, asker: u64, args: TellArgs) {
    let sent = resolve(our, &args.target)
        .and_then(|t| Request::to(t).json(&args.body).inherit(true).send());
    if let Err(error) = sent {
        reply(asker, &send_err_value(&error, None));
    }
}

/// `blast`: `count` fire-and-forget `{"seq": i}` requests.
pub(crate) fn blast(our: &Address, args: BlastArgs) -> Value {
    let target = match resolve(our, &args.target) {
        Ok(target) => target,
        Err(error) => return send_err_value(&error, None),
    };
    let (mut sent, mut errors) = (0u64, 0u64);
    for i in 0..args.count {
        match Request::to(&target).body(seq_body(i)).send() {
            Ok(_) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    json!({"sent": sent, "errors": errors})
}
