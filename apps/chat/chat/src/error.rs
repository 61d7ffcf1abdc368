//! The chat's typed refusals; each reaches callers as
//! `{"error": {"code", "message"}}` (HTTP 422 unless said otherwise).

use hearth_sdk::rpc::ClientError;
use hearth_sdk::AppError;

/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Messages one user may send to one host per minute.
pub const RATE_PER_MINUTE: usize = 30;
/// Largest attachment, in bytes (before base64).
pub const MAX_ATTACHMENT_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum ChatError {
    /// `empty-message`: nothing but whitespace, and no attachment.
    Empty,
    /// `too-long`: over [`MAX_TEXT_CHARS`].
    TooLong(usize),
    /// `rate-limited`: over [`RATE_PER_MINUTE`]; `retry_ms` until a slot.
    RateLimited { retry_ms: u64 },
    /// `unknown-room`: no such room (at its host, or in our list).
    UnknownRoom(String),
    /// `not-member`: the caller is not a member of the room.
    NotMember(String),
    /// `forbidden` (HTTP 403): the caller's role does not allow it.
    Forbidden(String),
    /// `not-invited`: a private room needs an invitation.
    NotInvited(String),
    /// `not-found` (HTTP 404): no such message, member or attachment.
    NotFound(String),
    /// `not-yours`: only the author may edit a message.
    NotYours,
    /// `bad-request` (HTTP 400): an argument out of its rules.
    Invalid(String),
    /// `host-offline`: the room's host cannot be reached (for actions that
    /// are not queued: edits, reactions, joins, invites...).
    HostOffline(String),
    /// `sender-offline`: the node storing an attachment cannot be reached
    /// and we have no cached copy.
    SenderOffline(String),
    /// `too-large`: an attachment over [`MAX_ATTACHMENT_BYTES`].
    TooLarge(usize),
    /// `limit`: a bound of this node (rooms, members, queue).
    Limit(String),
    /// `storage`: our node's store failed.
    Storage(String),
}

impl From<ChatError> for AppError {
    fn from(error: ChatError) -> Self {
        use ChatError::*;
        match error {
            Empty => AppError::new("empty-message", "a message needs some text or a file"),
            TooLong(n) => AppError::new(
                "too-long",
                format!("the message is too long: {n} characters, at most {MAX_TEXT_CHARS}"),
            ),
            RateLimited { retry_ms } => AppError::new(
                "rate-limited",
                format!(
                    "at most {RATE_PER_MINUTE} messages a minute; try again in {} s",
                    retry_ms.div_ceil(1000)
                ),
            )
            .with_details(&hearth_sdk::json::json!({ "retry_ms": retry_ms })),
            UnknownRoom(room) => AppError::new("unknown-room", format!("no room {room}")),
            NotMember(what) => AppError::new("not-member", what),
            Forbidden(what) => AppError::forbidden(what),
            NotInvited(room) => AppError::new(
                "not-invited",
                format!("{room} is private: ask for an invitation"),
            ),
            NotFound(what) => AppError::not_found(what),
            NotYours => AppError::new("not-yours", "only its author may change a message"),
            Invalid(what) => AppError::bad_request(what),
            HostOffline(host) => AppError::new(
                "host-offline",
                format!("{host}, the room's host, cannot be reached; try again when it is back"),
            ),
            SenderOffline(node) => AppError::new(
                "sender-offline",
                format!(
                    "{node} stores this file and cannot be reached; it shows once {node} is back"
                ),
            ),
            TooLarge(n) => AppError::new(
                "too-large",
                format!("the file has {n} bytes, at most {MAX_ATTACHMENT_BYTES}"),
            ),
            Limit(what) => AppError::new("limit", what),
            Storage(what) => AppError::new("storage", format!("our store failed: {what}")),
        }
    }
}

/// Whether a failed call to another node means "it cannot be reached"
/// (retry later) rather than a refusal.
pub fn is_unreachable(error: &ClientError) -> bool {
    matches!(
        error.code(),
        "offline" | "timeout" | "unknown-process" | "process-exited" | "mailbox-full"
    )
}

/// A refusal from another node's chat, kept as the code and message it
/// sent.
pub fn remote_refusal(error: ClientError) -> AppError {
    match error {
        ClientError::App(e) => e,
        other => AppError::new(other.code().to_string(), other.to_string()),
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", AppError::from(self.clone()))
    }
}
