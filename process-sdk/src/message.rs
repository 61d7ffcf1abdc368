//! What the node delivers to a process: [`Incoming`] messages and
//! [`Failure`]s of our own requests.

use serde::de::DeserializeOwned;

use crate::{wit, Address, SendError};

/// Bulk bytes that travel beside a request or response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob {
    /// Optional MIME type, for example `image/png`.
    pub mime: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Blob {
    /// A blob of `bytes` with a MIME type.
    pub fn new(mime: Option<&str>, bytes: impl Into<Vec<u8>>) -> Self {
        Blob {
            mime: mime.map(str::to_string),
            bytes: bytes.into(),
        }
    }
}

impl From<wit::Blob> for Blob {
    fn from(blob: wit::Blob) -> Self {
        Blob {
            mime: blob.mime,
            bytes: blob.bytes,
        }
    }
}

impl From<Blob> for wit::Blob {
    fn from(blob: Blob) -> Self {
        wit::Blob {
            mime: blob.mime,
            bytes: blob.bytes,
        }
    }
}

/// A request or response delivered to this process.
///
/// Kept within 64 bytes (40 on wasm32): the guest moves each event several
/// times on its way to the app (into the executor's reply slot, out of
/// it, into `handle`), and a larger value is moved by a `memory.copy`,
/// which wasmtime runs as a call into the host. What most messages lack
/// (metadata, blob, context) sits behind one box, made only for a message
/// that has one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    id: u64,
    /// The request's timeout when `awaits` (else 0).
    timeout_ms: u64,
    body: Vec<u8>,
    source: Address,
    rare: Option<Box<Rare>>,
    is_request: bool,
    inherit: bool,
    /// A request that awaits an answer (`expects_response` is `Some`).
    awaits: bool,
}

// The 64 bytes above, checked where it matters (the guest's wasm32).
#[cfg(target_pointer_width = "32")]
const _: () = assert!(std::mem::size_of::<Incoming>() <= 64);

/// The parts of an [`Incoming`] most messages do not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rare {
    metadata: Option<String>,
    blob: Option<Blob>,
    context: Option<Vec<u8>>,
}

impl Rare {
    /// `None` when there is nothing to keep.
    fn boxed(
        metadata: Option<String>,
        blob: Option<Blob>,
        context: Option<Vec<u8>>,
    ) -> Option<Box<Self>> {
        let rare = Rare {
            metadata,
            blob,
            context,
        };
        (!rare.is_empty()).then(|| Box::new(rare))
    }

    fn is_empty(&self) -> bool {
        self.metadata.is_none() && self.blob.is_none() && self.context.is_none()
    }
}

impl Incoming {
    /// The correlation id. For a request, pass it to [`crate::respond`];
    /// for a response, it is the id `send` returned for our request.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Who sent it.
    pub fn source(&self) -> &Address {
        &self.source
    }

    /// Whether this is a request (otherwise a response to one of ours).
    pub fn is_request(&self) -> bool {
        self.is_request
    }

    /// Whether this is a response to one of our requests.
    pub fn is_response(&self) -> bool {
        !self.is_request
    }

    /// For a request that awaits an answer: its timeout in milliseconds.
    /// `None` for fire-and-forget requests and for responses.
    pub fn expects_response(&self) -> Option<u64> {
        self.awaits.then_some(self.timeout_ms)
    }

    /// Whether the sender set `inherit` on this request.
    pub fn inherit(&self) -> bool {
        self.inherit
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body bytes.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The optional metadata string.
    pub fn metadata(&self) -> Option<&str> {
        self.rare.as_ref()?.metadata.as_deref()
    }

    /// The blob that came with the message, if any.
    pub fn blob(&self) -> Option<&Blob> {
        self.rare.as_ref()?.blob.as_ref()
    }

    /// Takes the blob out of the message.
    pub fn take_blob(&mut self) -> Option<Blob> {
        let rare = self.rare.as_mut()?;
        let blob = rare.blob.take();
        if rare.is_empty() {
            self.rare = None; // nothing left: as if it never came
        }
        blob
    }

    /// For a response: the context we attached to our request.
    pub fn context(&self) -> Option<&[u8]> {
        self.rare.as_ref()?.context.as_deref()
    }
}

impl From<wit::Incoming> for Incoming {
    fn from(incoming: wit::Incoming) -> Self {
        let parts = Parts {
            id: incoming.id,
            blob: incoming.blob,
            context: incoming.context,
        };
        Incoming::of(incoming.message, parts, incoming.source.into())
    }
}

impl Incoming {
    /// A delivered message whose source is the address `source`.
    #[inline]
    fn of(incoming_message: wit::Message, parts: Parts, source: Address) -> Self {
        let (is_request, inherit, expects_response, body, metadata) = match incoming_message {
            wit::Message::Request(r) => (true, r.inherit, r.expects_response, r.body, r.metadata),
            wit::Message::Response(r) => (false, false, None, r.body, r.metadata),
        };
        Incoming {
            id: parts.id,
            timeout_ms: expects_response.unwrap_or(0),
            body,
            source,
            rare: Rare::boxed(metadata, parts.blob.map(Blob::from), parts.context),
            is_request,
            inherit,
            awaits: expects_response.is_some(),
        }
    }

    /// A message delivered through `deliver` (WIT 0.1.2), its source read
    /// from (or first written to) the peer table. `None` when the slot is
    /// out of range or empty: the node broke the protocol.
    #[inline]
    pub(crate) fn from_peer(incoming: wit::PeerIncoming) -> Option<Self> {
        let source = crate::peers::source(incoming.source_slot, incoming.source)?;
        let parts = Parts {
            id: incoming.id,
            blob: incoming.blob,
            context: incoming.context,
        };
        Some(Incoming::of(incoming.message, parts, source))
    }
}

/// The fields of an `incoming` or `peer-incoming` besides the message and
/// the source.
struct Parts {
    id: u64,
    blob: Option<wit::Blob>,
    context: Option<Vec<u8>>,
}

/// One of our requests that failed after the node accepted it (for example
/// a timeout, or the target exiting before it answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    id: u64,
    error: SendError,
    context: Option<Vec<u8>>,
}

impl Failure {
    /// The correlation id `send` returned for the failed request.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What went wrong.
    pub fn error(&self) -> &SendError {
        &self.error
    }

    /// Takes the error.
    pub fn into_error(self) -> SendError {
        self.error
    }

    /// The context we attached to the request.
    pub fn context(&self) -> Option<&[u8]> {
        self.context.as_deref()
    }
}

impl From<wit::Failure> for Failure {
    fn from(failure: wit::Failure) -> Self {
        Failure {
            id: failure.id,
            error: failure.error.into(),
            context: failure.context,
        }
    }
}
