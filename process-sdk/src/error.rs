//! Why a message could not be delivered or answered.

use std::fmt;

use crate::{wit, Address};

/// What went wrong with a send. Mirrors `send-error-kind` in the WIT, plus
/// [`SendErrorKind::Encoding`], which the SDK raises before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendErrorKind {
    /// No process with that id runs on the target node.
    UnknownProcess,
    /// We lack the capability to message the target.
    CapabilityMissing,
    /// The body plus blob exceed the node's message size limit.
    PayloadTooLarge,
    /// The target's bounded mailbox is full; retry later.
    MailboxFull,
    /// No response arrived within the request's timeout.
    Timeout,
    /// The target node cannot be reached.
    Offline,
    /// The target exited before it answered.
    ProcessExited,
    /// A response was sent while no request awaited one.
    NoAsker,
    /// The target address is malformed.
    BadAddress,
    /// The body could not be serialized (raised by the SDK, never the node).
    Encoding,
}

impl SendErrorKind {
    /// The kebab-case name used in the WIT, for example `mailbox-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SendErrorKind::UnknownProcess => "unknown-process",
            SendErrorKind::CapabilityMissing => "capability-missing",
            SendErrorKind::PayloadTooLarge => "payload-too-large",
            SendErrorKind::MailboxFull => "mailbox-full",
            SendErrorKind::Timeout => "timeout",
            SendErrorKind::Offline => "offline",
            SendErrorKind::ProcessExited => "process-exited",
            SendErrorKind::NoAsker => "no-asker",
            SendErrorKind::BadAddress => "bad-address",
            SendErrorKind::Encoding => "encoding",
        }
    }
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<wit::SendErrorKind> for SendErrorKind {
    fn from(kind: wit::SendErrorKind) -> Self {
        match kind {
            wit::SendErrorKind::UnknownProcess => SendErrorKind::UnknownProcess,
            wit::SendErrorKind::CapabilityMissing => SendErrorKind::CapabilityMissing,
            wit::SendErrorKind::PayloadTooLarge => SendErrorKind::PayloadTooLarge,
            wit::SendErrorKind::MailboxFull => SendErrorKind::MailboxFull,
            wit::SendErrorKind::Timeout => SendErrorKind::Timeout,
            wit::SendErrorKind::Offline => SendErrorKind::Offline,
            wit::SendErrorKind::ProcessExited => SendErrorKind::ProcessExited,
            wit::SendErrorKind::NoAsker => SendErrorKind::NoAsker,
            wit::SendErrorKind::BadAddress => SendErrorKind::BadAddress,
        }
    }
}

/// A request or response that could not be delivered: what went wrong
/// ([`SendError::kind`]), where the message was going and why.
///
/// Boxed inside, so a `Result<_, SendError>` stays one pointer wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    inner: Box<SendErrorInner>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SendErrorInner {
    kind: SendErrorKind,
    target: Address,
    detail: String,
}

impl SendError {
    /// An error of `kind` for a message to `target`.
    pub fn new(kind: SendErrorKind, target: Address, detail: impl Into<String>) -> Self {
        SendError {
            inner: Box::new(SendErrorInner {
                kind,
                target,
                detail: detail.into(),
            }),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> SendErrorKind {
        self.inner.kind
    }

    /// Where the message was going.
    pub fn target(&self) -> &Address {
        &self.inner.target
    }

    /// A human-readable explanation from the node or the SDK.
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "send to {} failed: {}", self.target(), self.kind())?;
        if !self.detail().is_empty() {
            write!(f, ": {}", self.detail())?;
        }
        Ok(())
    }
}

impl std::error::Error for SendError {}

impl From<wit::SendError> for SendError {
    fn from(error: wit::SendError) -> Self {
        SendError::new(error.kind.into(), error.target.into(), error.detail)
    }
}
