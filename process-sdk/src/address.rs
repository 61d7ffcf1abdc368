//! Typed process ids and addresses.
//!
//! A [`ProcessId`] is `process:package:publisher`; an [`Address`] is
//! `node@process:package:publisher`. Process and package names are
//! `[a-z0-9-]`; the publisher and the node name may also hold `.`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wit;

/// Why a process id or address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not three `:`-separated parts.
    #[error("expected `process:package:publisher`, got {0:?}")]
    ProcessIdShape(String),
    /// No `node@` in front of the process id.
    #[error("expected `node@process:package:publisher`, got {0:?}")]
    AddressShape(String),
    /// A part is empty or holds a character it may not hold.
    #[error("{part} name {value:?} must be non-empty and use only {allowed}")]
    BadName {
        /// Which part: `process`, `package`, `publisher` or `node`.
        part: &'static str,
        /// The offending text.
        value: String,
        /// The characters that part may hold.
        allowed: &'static str,
    },
}

const NAME_CHARS: &str = "[a-z0-9-]";
const DOTTED_CHARS: &str = "[a-z0-9-.]";

/// Checks a process or package name: non-empty `[a-z0-9-]`.
pub(crate) fn check_name(part: &'static str, value: &str) -> Result<(), AddressError> {
    check(part, value, false)
}

fn check(part: &'static str, value: &str, dots: bool) -> Result<(), AddressError> {
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    if !value.is_empty() && value.chars().all(ok_char) {
        Ok(())
    } else {
        Err(AddressError::BadName {
            part,
            value: value.to_string(),
            allowed: if dots { DOTTED_CHARS } else { NAME_CHARS },
        })
    }
}

/// `process:package:publisher`: names one process, on whatever node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId {
    process: String,
    package: String,
    publisher: String,
}

impl ProcessId {
    /// Builds a process id, checking each name.
    pub fn new(process: &str, package: &str, publisher: &str) -> Result<Self, AddressError> {
        check("process", process, false)?;
        check("package", package, false)?;
        check("publisher", publisher, true)?;
        Ok(ProcessId {
            process: process.to_string(),
            package: package.to_string(),
            publisher: publisher.to_string(),
        })
    }

    /// The process name, the first part.
    pub fn process(&self) -> &str {
        &self.process
    }

    /// The package name, the second part.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// The publisher, the third part.
    pub fn publisher(&self) -> &str {
        &self.publisher
    }

    /// This process on the node `node`.
    pub fn on(self, node: &str) -> Result<Address, AddressError> {
        Address::new(node, self)
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.process, self.package, self.publisher)
    }
}

impl FromStr for ProcessId {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(process), Some(package), Some(publisher), None) => {
                ProcessId::new(process, package, publisher)
            }
            _ => Err(AddressError::ProcessIdShape(s.to_string())),
        }
    }
}

/// `node@process:package:publisher`: where to send a message.
///
/// Shared: a clone takes a reference, not a copy of the names, and the
/// address keeps the WIT form the node takes, so sending to it copies
/// nothing.
#[derive(Clone)]
pub struct Address {
    inner: Arc<AddressInner>,
}

struct AddressInner {
    process: ProcessId,
    /// The same address as the WIT record `send-request` takes.
    raw: wit::Address,
}

impl Address {
    /// Builds an address, checking the node name.
    pub fn new(node: &str, process: ProcessId) -> Result<Self, AddressError> {
        check("node", node, true)?;
        Ok(Address::from_parts(node.to_string(), process))
    }

    fn from_parts(node: String, process: ProcessId) -> Self {
        let raw = wit::Address {
            node,
            process: process.clone().into(),
        };
        Address {
            inner: Arc::new(AddressInner { process, raw }),
        }
    }

    /// The WIT form, borrowed, for the kernel's imports.
    pub(crate) fn raw(&self) -> &wit::Address {
        &self.inner.raw
    }

    /// The parts compared, hashed and ordered.
    fn key(&self) -> (&str, &ProcessId) {
        (&self.inner.raw.node, &self.inner.process)
    }

    /// Parses `node@process:package:publisher`, or a bare
    /// `process:package:publisher` as a process on `default_node`
    /// (usually our own node, `our().node()`).
    pub fn parse_relative(s: &str, default_node: &str) -> Result<Self, AddressError> {
        if s.contains('@') {
            s.parse()
        } else {
            Address::new(default_node, s.parse()?)
        }
    }

    /// The node name.
    pub fn node(&self) -> &str {
        &self.inner.raw.node
    }

    /// The process on that node.
    pub fn process(&self) -> &ProcessId {
        &self.inner.process
    }
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.key() == other.key()
    }
}

impl Eq for Address {}

impl Hash for Address {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Address {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("node", &self.node())
            .field("process", self.process())
            .finish()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.node(), self.process())
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('@') {
            Some((node, process)) => Address::new(node, process.parse()?),
            None => Err(AddressError::AddressShape(s.to_string())),
        }
    }
}

impl From<&Address> for Address {
    fn from(address: &Address) -> Self {
        address.clone()
    }
}

macro_rules! serde_as_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(ProcessId);
serde_as_string!(Address);

// The node hands us well-formed ids, so conversions from WIT do not check.

impl From<wit::ProcessId> for ProcessId {
    fn from(id: wit::ProcessId) -> Self {
        ProcessId {
            process: id.process,
            package: id.package,
            publisher: id.publisher,
        }
    }
}

impl From<ProcessId> for wit::ProcessId {
    fn from(id: ProcessId) -> Self {
        wit::ProcessId {
            process: id.process,
            package: id.package,
            publisher: id.publisher,
        }
    }
}

impl From<wit::Address> for Address {
    fn from(address: wit::Address) -> Self {
        let process = ProcessId::from(address.process.clone());
        Address {
            inner: Arc::new(AddressInner {
                process,
                raw: address,
            }),
        }
    }
}

impl From<Address> for wit::Address {
    fn from(address: Address) -> Self {
        match Arc::try_unwrap(address.inner) {
            Ok(inner) => inner.raw,
            Err(shared) => shared.raw.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_id_round_trips() {
        let id: ProcessId = "echo:echo:sys".parse().unwrap();
        assert_eq!(
            (id.process(), id.package(), id.publisher()),
            ("echo", "echo", "sys")
        );
        assert_eq!(id.to_string(), "echo:echo:sys");
        let dotted: ProcessId = "chat-2:chat:alice.hearth".parse().unwrap();
        assert_eq!(dotted.publisher(), "alice.hearth");
    }

    #[test]
    fn process_id_rejects_bad_shapes_and_names() {
        for bad in [
            "", "a:b", "a:b:c:d", "a::c", "A:b:c", "a.b:c:d", "a:b.c:d", "a:b:c d", "a:b:c@",
        ] {
            assert!(bad.parse::<ProcessId>().is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            "a:b".parse::<ProcessId>(),
            Err(AddressError::ProcessIdShape(_))
        ));
        assert!(matches!(
            "a:B:c".parse::<ProcessId>(),
            Err(AddressError::BadName {
                part: "package",
                ..
            })
        ));
    }

    #[test]
    fn address_round_trips() {
        let address: Address = "node-1.dev@echo:echo:sys".parse().unwrap();
        assert_eq!(address.node(), "node-1.dev");
        assert_eq!(address.process().to_string(), "echo:echo:sys");
        assert_eq!(address.to_string(), "node-1.dev@echo:echo:sys");
    }

    #[test]
    fn address_rejects_bad_input() {
        for bad in [
            "echo:echo:sys",
            "@echo:echo:sys",
            "a@b@c:d:e",
            "n_1@a:b:c",
            "n@a:b",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            "a:b:c".parse::<Address>(),
            Err(AddressError::AddressShape(_))
        ));
    }

    #[test]
    fn relative_parse_fills_in_the_default_node() {
        let local = Address::parse_relative("echo:echo:sys", "home").unwrap();
        assert_eq!(local.to_string(), "home@echo:echo:sys");
        let remote = Address::parse_relative("far@echo:echo:sys", "home").unwrap();
        assert_eq!(remote.node(), "far");
        assert!(Address::parse_relative("echo:echo", "home").is_err());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let address: Address = "n@p:k:pub".parse().unwrap();
        let json = serde_json::to_string(&address).unwrap();
        assert_eq!(json, "\"n@p:k:pub\"");
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), address);
        assert!(serde_json::from_str::<ProcessId>("\"p:k\"").is_err());
    }

    #[test]
    fn wit_conversions_keep_every_part() {
        let address: Address = "n@p:k:pub".parse().unwrap();
        let raw: wit::Address = address.clone().into();
        assert_eq!(raw.process.package, "k");
        assert_eq!(Address::from(raw), address);
    }
}
