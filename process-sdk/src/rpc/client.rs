//! Calling an app's methods: what generated clients use.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{codes, AppError};
use crate::{Address, Request, SendError, DEFAULT_ASK_TIMEOUT_MS};

/// Why a call to an app's method failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The request did not reach the app or no reply came (timeout,
    /// offline, unknown process...).
    #[error("call failed: {0}")]
    Send(SendError),
    /// The app answered with an error envelope.
    #[error("{0}")]
    App(AppError),
    /// The reply was not an envelope of the expected type.
    #[error("unreadable reply: {0}")]
    Decode(String),
}

impl ClientError {
    /// The stable code: the app's, the send error's kind, or `bad-reply`.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Send(error) => error.kind().as_str(),
            ClientError::App(error) => &error.code,
            ClientError::Decode(_) => codes::BAD_REPLY,
        }
    }
}

impl From<ClientError> for AppError {
    /// An app's error passes through unchanged; a send error keeps its
    /// kind as the code; an unreadable reply is `bad-reply`.
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::App(error) => error,
            ClientError::Send(error) => error.into(),
            ClientError::Decode(detail) => AppError::new(codes::BAD_REPLY, detail),
        }
    }
}

#[derive(Deserialize)]
enum Envelope<T> {
    #[serde(rename = "ok")]
    Ok(T),
    #[serde(rename = "error")]
    Error(AppError),
}

/// Calls `method` of the app at `target` with `args` (a struct of named
/// arguments) and awaits its typed reply, within the default ask timeout.
pub async fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
    target: &Address,
    method: &str,
    args: &A,
) -> Result<R, ClientError> {
    call_within(target, method, args, DEFAULT_ASK_TIMEOUT_MS).await
}

/// [`call`] with a timeout in milliseconds.
pub async fn call_within<A: Serialize + ?Sized, R: DeserializeOwned>(
    target: &Address,
    method: &str,
    args: &A,
    timeout_ms: u64,
) -> Result<R, ClientError> {
    let body = call_body(method, args)?;
    let reply = Request::to(target.clone())
        .body(body)
        .timeout_ms(timeout_ms)
        .ask()
        .await
        .map_err(ClientError::Send)?;
    decode_reply(reply.body())
}

/// `{"<method>": <args>}`; method names are Rust identifiers, so they
/// need no escaping.
pub(crate) fn call_body<A: Serialize + ?Sized>(
    method: &str,
    args: &A,
) -> Result<Vec<u8>, ClientError> {
    let args = serde_json::to_vec(args)
        .map_err(|e| ClientError::Decode(format!("arguments do not encode: {e}")))?;
    let mut body = Vec::with_capacity(args.len() + method.len() + 5);
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(method.as_bytes());
    body.extend_from_slice(b"\":");
    body.extend_from_slice(&args);
    body.push(b'}');
    Ok(body)
}

pub(crate) fn decode_reply<R: DeserializeOwned>(body: &[u8]) -> Result<R, ClientError> {
    match serde_json::from_slice::<Envelope<R>>(body) {
        Ok(Envelope::Ok(value)) => Ok(value),
        Ok(Envelope::Error(error)) => Err(ClientError::App(error)),
        Err(error) => Err(ClientError::Decode(error.to_string())),
    }
}
