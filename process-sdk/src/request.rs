//! Building and sending requests and responses.

use serde::Serialize;

use crate::bindings::hearth::process::kernel;
use crate::{wit, Address, Ask, Blob, SendError, SendErrorKind};

/// The timeout [`Request::ask`] uses when none was set: an awaited request
/// always needs one, or a lost answer would park its task forever.
pub const DEFAULT_ASK_TIMEOUT_MS: u64 = 30_000;

/// A request being built. Finish it with [`Request::send`] or
/// [`Request::ask`].
///
/// ```ignore
/// let id = Request::to(target).json(&cmd).timeout_ms(5_000).context(b"mine".to_vec()).send()?;
/// let reply = Request::to(target).body(b"ping".to_vec()).ask().await?;
/// ```
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent or asked"]
pub struct Request {
    target: Address,
    /// `Err` holds why the body could not be encoded; reported at send.
    body: Result<Vec<u8>, String>,
    metadata: Option<String>,
    timeout_ms: Option<u64>,
    context: Option<Vec<u8>>,
    blob: Option<Blob>,
    inherit: bool,
}

impl Request {
    /// A request to `target` with an empty body, fire-and-forget until a
    /// timeout is set.
    pub fn to(target: impl Into<Address>) -> Self {
        Request {
            target: target.into(),
            body: Ok(Vec::new()),
            metadata: None,
            timeout_ms: None,
            context: None,
            blob: None,
            inherit: false,
        }
    }

    /// Sets the body bytes.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Ok(body.into());
        self
    }

    /// Sets the body to `value` as JSON. An encoding error is reported by
    /// `send`/`ask` as [`SendErrorKind::Encoding`].
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.body = serde_json::to_vec(value).map_err(|e| e.to_string());
        self
    }

    /// Sets the metadata string.
    pub fn metadata(mut self, metadata: &str) -> Self {
        self.metadata = Some(metadata.to_string());
        self
    }

    /// Expects a response within `ms` milliseconds. Without it, `send` is
    /// fire-and-forget.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Attaches bytes that stay on this node and come back with the
    /// response or failure of this request.
    pub fn context(mut self, context: impl Into<Vec<u8>>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// Attaches a blob.
    pub fn blob(mut self, blob: Blob) -> Self {
        self.blob = Some(blob);
        self
    }

    /// Forwards the request being handled: without a timeout, the target
    /// answers our asker directly and we no longer owe an answer. Without a
    /// blob, the blob of the request being handled is passed on.
    pub fn inherit(mut self, inherit: bool) -> Self {
        self.inherit = inherit;
        self
    }

    /// Where the request goes.
    pub fn target(&self) -> &Address {
        &self.target
    }

    /// Sends the request and returns its correlation id at once. If a
    /// timeout was set, the response (or a failure) arrives later as an
    /// event carrying that id and our context.
    pub fn send(self) -> Result<u64, SendError> {
        let (target, request, context, blob) = self.into_parts()?;
        // The target's WIT form is borrowed from the shared address.
        kernel::send_request(target.raw(), &request, context.as_deref(), blob.as_ref())
            .map_err(SendError::from)
    }

    /// Sends the request and returns a future of its response, to `.await`
    /// inside [`crate::spawn_task`]. Uses [`DEFAULT_ASK_TIMEOUT_MS`] when no
    /// timeout was set. Errors found at once resolve the future at once.
    pub fn ask(mut self) -> Ask {
        if self.timeout_ms.is_none() {
            self.timeout_ms = Some(DEFAULT_ASK_TIMEOUT_MS);
        }
        match self.send() {
            Ok(id) => Ask::waiting(id),
            Err(error) => Ask::failed(error),
        }
    }

    /// The WIT `outgoing-request`, for [`crate::OnExit::Requests`]. The
    /// context is dropped: no one is left to receive it.
    pub(crate) fn into_outgoing(self) -> Result<wit::OutgoingRequest, SendError> {
        let (target, request, _context, blob) = self.into_parts()?;
        Ok(wit::OutgoingRequest {
            target: target.into(),
            request,
            blob,
        })
    }

    /// The target, the WIT request, the context and the blob; a body that
    /// failed to encode is the `encoding` error, naming the target.
    #[allow(clippy::type_complexity)]
    fn into_parts(
        self,
    ) -> Result<(Address, wit::Request, Option<Vec<u8>>, Option<wit::Blob>), SendError> {
        let body = match self.body {
            Ok(body) => body,
            Err(detail) => {
                return Err(SendError::new(SendErrorKind::Encoding, self.target, detail))
            }
        };
        let request = wit::Request {
            inherit: self.inherit,
            expects_response: self.timeout_ms,
            body,
            metadata: self.metadata,
        };
        Ok((
            self.target,
            request,
            self.context,
            self.blob.map(wit::Blob::from),
        ))
    }
}

/// A response being built; finish it with [`Response::send`].
#[derive(Debug, Clone)]
#[must_use = "a response does nothing until it is sent"]
pub struct Response {
    body: Result<Vec<u8>, String>,
    metadata: Option<String>,
    blob: Option<Blob>,
}

impl Default for Response {
    fn default() -> Self {
        Response::new()
    }
}

impl Response {
    /// A response with an empty body.
    pub fn new() -> Self {
        Response {
            body: Ok(Vec::new()),
            metadata: None,
            blob: None,
        }
    }

    /// Sets the body bytes.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Ok(body.into());
        self
    }

    /// Sets the body to `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.body = serde_json::to_vec(value).map_err(|e| e.to_string());
        self
    }

    /// Sets the metadata string.
    pub fn metadata(mut self, metadata: &str) -> Self {
        self.metadata = Some(metadata.to_string());
        self
    }

    /// Attaches a blob.
    pub fn blob(mut self, blob: Blob) -> Self {
        self.blob = Some(blob);
        self
    }

    /// Answers the request whose correlation id is `answering`: the one
    /// being handled or any earlier one still unanswered. A request can be
    /// answered once; answering an unknown id gives
    /// [`SendErrorKind::NoAsker`]. If the body could not be encoded, the
    /// error's target is our own address.
    pub fn send(self, answering: u64) -> Result<(), SendError> {
        let body = self
            .body
            .map_err(|detail| SendError::new(SendErrorKind::Encoding, crate::our(), detail))?;
        let response = wit::Response {
            body,
            metadata: self.metadata,
        };
        let blob = self.blob.map(wit::Blob::from);
        kernel::send_response(answering, &response, blob.as_ref()).map_err(SendError::from)
    }
}

/// Answers request `answering` with `body`. See [`Response::send`].
pub fn respond(answering: u64, body: impl Into<Vec<u8>>) -> Result<(), SendError> {
    Response::new().body(body).send(answering)
}

/// Answers request `answering` with `value` as JSON. See [`Response::send`].
pub fn respond_json<T: Serialize + ?Sized>(answering: u64, value: &T) -> Result<(), SendError> {
    Response::new().json(value).send(answering)
}
