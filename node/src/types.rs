//! The node's own message types. The WIT types generated for the guest
//! boundary are converted to and from these in `process::host` only.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// `process:package:publisher`.
///
/// The names are shared (`Arc<str>`): every message carries a source and a
/// target address, and cloning them is then a few reference-count
/// increments instead of four allocations (with the in-place target check
/// in `process::host`, fire-and-forget went from ~245k to ~300k msg/s).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId {
    pub process: Arc<str>,
    pub package: Arc<str>,
    pub publisher: Arc<str>,
}

/// `node@process:package:publisher`, behind one shared reference: every
/// message holds up to three addresses, so a clone or drop is one atomic
/// operation instead of four, and an address takes 8 bytes in a message
/// (and in every slot of a mailbox's queue) instead of 64. Its parts are
/// read through `Deref` (`address.node`, `address.process`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address(Arc<AddressParts>);

/// What an [`Address`] names.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AddressParts {
    pub node: Arc<str>,
    pub process: ProcessId,
}

impl std::ops::Deref for Address {
    type Target = AddressParts;
    fn deref(&self) -> &AddressParts {
        &self.0
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad address {input:?}: {reason}")]
pub struct ParseError {
    pub input: String,
    pub reason: &'static str,
}

/// Whether `s` is a valid name: non-empty `[a-z0-9-]`, plus `.` when
/// `allow_dot` (publishers and nodes).
pub fn valid_name(s: &str, allow_dot: bool) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (allow_dot && b == b'.')
        })
}

impl ProcessId {
    pub fn new(process: &str, package: &str, publisher: &str) -> Self {
        Self {
            process: process.into(),
            package: package.into(),
            publisher: publisher.into(),
        }
    }

    /// `package:publisher`.
    pub fn package_id(&self) -> String {
        format!("{}:{}", self.package, self.publisher)
    }

    pub fn is_valid(&self) -> bool {
        valid_name(&self.process, false)
            && valid_name(&self.package, false)
            && valid_name(&self.publisher, true)
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.process, self.package, self.publisher)
    }
}

impl FromStr for ProcessId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseError {
            input: s.into(),
            reason,
        };
        let mut parts = s.split(':');
        let (Some(process), Some(package), Some(publisher), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("expected process:package:publisher"));
        };
        let id = ProcessId::new(process, package, publisher);
        if !id.is_valid() {
            return Err(err(
                "names are [a-z0-9-]; the publisher may also contain '.'",
            ));
        }
        Ok(id)
    }
}

impl Address {
    pub fn new(node: impl Into<Arc<str>>, process: ProcessId) -> Self {
        Self(Arc::new(AddressParts {
            node: node.into(),
            process,
        }))
    }

    /// Parses `node@process:package:publisher`, or a bare process id, which
    /// is taken to live on `default_node`.
    pub fn parse_with_default(s: &str, default_node: &str) -> Result<Self, ParseError> {
        match s.split_once('@') {
            Some(_) => s.parse(),
            None => Ok(Address::new(default_node, s.parse()?)),
        }
    }
}

impl Address {
    /// Whether this is the address `node@process:package:publisher`, for
    /// comparing with an address given as parts without building it.
    pub fn is(&self, node: &str, process: &str, package: &str, publisher: &str) -> bool {
        *self.node == *node
            && *self.process.process == *process
            && *self.process.package == *package
            && *self.process.publisher == *publisher
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.node, self.process)
    }
}

impl FromStr for Address {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((node, process)) = s.split_once('@') else {
            return Err(ParseError {
                input: s.into(),
                reason: "expected node@process:package:publisher",
            });
        };
        if !valid_name(node, true) {
            return Err(ParseError {
                input: s.into(),
                reason: "node names are [a-z0-9-.]",
            });
        }
        Ok(Address::new(node, process.parse()?))
    }
}

macro_rules! serde_as_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_string!(ProcessId);
serde_as_string!(Address);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    pub mime: Option<String>,
    #[serde(with = "byte_string")]
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub inherit: bool,
    /// Timeout in milliseconds; `None` is fire-and-forget.
    pub expects_response: Option<u64>,
    #[serde(with = "byte_string")]
    pub body: Vec<u8>,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    #[serde(with = "byte_string")]
    pub body: Vec<u8>,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// A message as the kernel routes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMessage {
    /// Correlation id; a response carries the id of its request.
    pub id: u64,
    pub source: Address,
    pub target: Address,
    /// Who gets the response to this request; `None` for fire-and-forget
    /// requests and for responses.
    pub rsvp: Option<Address>,
    pub message: Message,
    pub blob: Option<Blob>,
}

impl KernelMessage {
    /// Bytes counted against the message size limit.
    pub fn payload_len(&self) -> usize {
        let body = match &self.message {
            Message::Request(r) => r.body.len() + r.metadata.as_ref().map_or(0, String::len),
            Message::Response(r) => r.body.len() + r.metadata.as_ref().map_or(0, String::len),
        };
        body + self.blob.as_ref().map_or(0, |b| b.bytes.len())
    }

    pub fn is_request(&self) -> bool {
        matches!(self.message, Message::Request(_))
    }
}

/// Why a message could not be delivered or answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SendErrorKind {
    UnknownProcess,
    CapabilityMissing,
    PayloadTooLarge,
    MailboxFull,
    Timeout,
    Offline,
    ProcessExited,
    NoAsker,
    BadAddress,
}

impl SendErrorKind {
    /// Stable kebab-case name, as in the WIT and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownProcess => "unknown-process",
            Self::CapabilityMissing => "capability-missing",
            Self::PayloadTooLarge => "payload-too-large",
            Self::MailboxFull => "mailbox-full",
            Self::Timeout => "timeout",
            Self::Offline => "offline",
            Self::ProcessExited => "process-exited",
            Self::NoAsker => "no-asker",
            Self::BadAddress => "bad-address",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{}: {target}: {detail}", kind.as_str())]
pub struct SendError {
    pub kind: SendErrorKind,
    pub target: Address,
    pub detail: String,
}

impl SendError {
    pub fn new(kind: SendErrorKind, target: &Address, detail: impl Into<String>) -> Self {
        Self {
            kind,
            target: target.clone(),
            detail: detail.into(),
        }
    }
}

/// What the node does when a process exits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OnExit {
    #[default]
    None,
    Restart,
    Requests(Vec<ExitRequest>),
}

/// A request sent on behalf of a process that exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRequest {
    pub target: Address,
    #[serde(with = "byte_string")]
    pub body: Vec<u8>,
}

/// Message bodies and blobs (de)serialised as one byte string, not as a
/// sequence of `u8`s: bincode and JSON encode both the same way (a length,
/// then the bytes; an array of numbers), but a sequence costs a serde call
/// per byte each way. Every bincode decode of these types in the node
/// runs with a byte limit (`net::wire`, the admin upload), so a claimed
/// length past the input is refused before anything is allocated for it.
mod byte_string {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    /// Bytes up front taken from a sequence's claimed length.
    const SEQ_PREALLOCATION: usize = 4096;

    impl<'de> de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let claimed = seq.size_hint().unwrap_or(0);
            let mut bytes = Vec::with_capacity(claimed.min(SEQ_PREALLOCATION));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body as a byte string encodes exactly as the sequence of `u8`s it
    /// was before (bincode and JSON), so nodes and stored data of either
    /// kind read each other, and a claimed length past the frame is refused.
    #[test]
    fn bodies_encode_as_before_and_hostile_lengths_are_refused() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Before {
            inherit: bool,
            expects_response: Option<u64>,
            body: Vec<u8>,
            metadata: Option<String>,
        }
        let body: Vec<u8> = (0..=255).chain([0, 7, 255]).collect();
        let now = Request {
            inherit: true,
            expects_response: Some(9),
            body: body.clone(),
            metadata: Some("m".into()),
        };
        let before = Before {
            inherit: true,
            expects_response: Some(9),
            body,
            metadata: Some("m".into()),
        };
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&now, config).unwrap();
        assert_eq!(
            bytes,
            bincode::serde::encode_to_vec(&before, config).unwrap()
        );
        let (back, _): (Request, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back, now);
        let json = serde_json::to_string(&now).unwrap();
        assert_eq!(json, serde_json::to_string(&before).unwrap());
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), now);

        // The body claims 2^40 bytes; the frame holds 12.
        let mut hostile = vec![1, 1, 9, 0xfd];
        hostile.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let limited = config.with_limit::<4096>();
        assert!(bincode::serde::decode_from_slice::<Request, _>(&hostile, limited).is_err());
    }

    #[test]
    fn parses_and_prints_addresses() {
        let a: Address = "alice.os@echo:echo:sys".parse().unwrap();
        assert_eq!(&*a.node, "alice.os");
        assert_eq!(a.process, ProcessId::new("echo", "echo", "sys"));
        assert_eq!(a.to_string(), "alice.os@echo:echo:sys");
        let b = Address::parse_with_default("echo:echo:sys", "bob.os").unwrap();
        assert_eq!(&*b.node, "bob.os");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "echo:echo",
            "Echo:echo:sys",
            "a:b:c:d",
            "a::c",
            "a.b:c:d",
            "",
        ] {
            assert!(bad.parse::<ProcessId>().is_err(), "{bad}");
        }
        assert!("x@y".parse::<Address>().is_err());
        assert!("a b@x:y:z".parse::<Address>().is_err());
        assert!("x:y:pub.os".parse::<ProcessId>().is_ok());
    }
}
