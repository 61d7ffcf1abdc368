//! What travels between `http-server:distro:sys` and processes, as JSON
//! message bodies. `process-sdk/src/http.rs` mirrors these types (the SDK
//! never depends on the node); the JSON shapes are the contract.
//!
//! Process -> server: [`HttpServerRequest`], answered (when asked) with a
//! JSON `Result<u64, HttpServerError>` (`{"Ok": n}` / `{"Err": ...}`).
//! Server -> process: [`HttpServerEvent`] as a request; `Http` expects an
//! answer ([`HttpAnswer`], body bytes as the blob), WebSocket events are
//! fire-and-forget. Payloads (HTTP bodies, WebSocket frames) travel as the
//! message blob.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Who may reach a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Anyone who can reach the node.
    Public,
    /// Clients holding a session cookie (logged in with the node password).
    Authenticated,
    /// Clients on a loopback address only.
    LocalOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpServerRequest {
    /// Bind an HTTP path (under `/<process-id>`). Segments `:name` capture
    /// a path parameter; a last segment `*name` captures the rest.
    Bind {
        path: String,
        access: Access,
    },
    /// Bind a WebSocket path, same pattern rules.
    BindWs {
        path: String,
        access: Access,
    },
    Unbind {
        path: String,
    },
    /// Send the blob to one connection of ours.
    WsPush {
        conn: u64,
        binary: bool,
    },
    /// Send the blob to every connection that joined `topic`; answers the
    /// number of connections it was queued for.
    WsPublish {
        topic: String,
        binary: bool,
    },
    WsJoin {
        conn: u64,
        topic: String,
    },
    WsLeave {
        conn: u64,
        topic: String,
    },
    WsClose {
        conn: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HttpServerError {
    #[error("bad path pattern: {0}")]
    BadPath(String),
    #[error("no open WebSocket connection {0} of this process")]
    NoSuchConnection(u64),
    #[error("bad request: {0}")]
    BadRequest(String),
}

pub type HttpServerReply = Result<u64, HttpServerError>;

/// An HTTP request for a process binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingHttp {
    pub method: String,
    /// Path below the process prefix, such as `/api/rooms/lobby`.
    pub path: String,
    /// The pattern that matched, such as `/api/rooms/:room`.
    pub bound_path: String,
    pub params: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    /// Lower-case names; repeated headers joined with `, `. The session
    /// cookie is removed.
    pub headers: BTreeMap<String, String>,
    /// The logged-in user (the node's name) or `None` for anonymous clients.
    pub user: Option<String>,
}

/// [`HttpServerEvent::Http`] borrowing from the request it describes: the
/// same JSON, encoded without copying the request's strings first. The
/// headers are any map (`HeaderMap` through a small adapter in `proxy.rs`).
#[derive(Serialize)]
pub enum HttpEventRef<'a, H: Serialize> {
    Http(IncomingHttpRef<'a, H>),
}

#[derive(Serialize)]
pub struct IncomingHttpRef<'a, H: Serialize> {
    pub method: &'a str,
    pub path: &'a str,
    pub bound_path: &'a str,
    pub params: &'a Params<'a>,
    pub query: &'a BTreeMap<String, String>,
    pub headers: H,
    pub user: Option<&'a str>,
}

/// The parameters a match captured, in pattern order, each name once (a
/// name the pattern repeats keeps its last value). A `:name` value is
/// borrowed from the request path, a `*name` one is the rest joined.
/// Encoded as a JSON object of strings. The first [`INLINE_PARAMS`] live
/// in the value itself, so a usual match (one or two parameters, or a
/// pattern that fails after capturing some) allocates nothing; more go to
/// `spilled`.
#[derive(Debug, Clone, Default)]
pub struct Params<'p> {
    inline: [Option<Param<'p>>; INLINE_PARAMS],
    spilled: Vec<Param<'p>>,
}

/// Parameters a [`Params`] holds without allocating.
pub const INLINE_PARAMS: usize = 4;

/// One captured parameter: its name (shared with the pattern) and value.
type Param<'p> = (Arc<str>, Cow<'p, str>);

impl<'p> Params<'p> {
    /// Capture `value` for `name`, replacing an earlier one.
    pub fn set(&mut self, name: &Arc<str>, value: Cow<'p, str>) {
        if let Some(slot) = self.entries_mut().find(|(n, _)| n == name) {
            slot.1 = value;
            return;
        }
        let entry = (name.clone(), value);
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(free) => *free = Some(entry),
            None => self.spilled.push(entry),
        }
    }

    /// The value captured for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The captured parameters in pattern order (inline ones fill from the
    /// front and are never emptied, so they all come before the spilled).
    fn entries(&self) -> impl Iterator<Item = &Param<'p>> {
        self.inline.iter().flatten().chain(&self.spilled)
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = &mut Param<'p>> {
        self.inline.iter_mut().flatten().chain(&mut self.spilled)
    }
}

impl serde::Serialize for Params<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries().map(|(n, v)| (&**n, v.as_ref())))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpServerEvent {
    Http(IncomingHttp),
    WsOpen {
        conn: u64,
        path: String,
        query: BTreeMap<String, String>,
        user: Option<String>,
    },
    WsMessage {
        conn: u64,
        binary: bool,
    },
    WsClose {
        conn: u64,
    },
}

/// A process's answer to [`HttpServerEvent::Http`]; the body is the blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpAnswer {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// [`HttpAnswer`] borrowing its header text from the body it is decoded
/// from (the server's side: it copies the text into the response once).
/// The headers come sorted by name; a repeated name keeps its last value,
/// as in [`HttpAnswer`]'s map.
#[derive(Debug, Deserialize)]
pub struct HttpAnswerRef<'a> {
    pub status: u16,
    #[serde(default, borrow)]
    pub headers: AnswerHeaders<'a>,
}

/// The headers of an [`HttpAnswerRef`].
#[derive(Debug, Default)]
pub struct AnswerHeaders<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

/// Text that is borrowed from the body unless it has escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for AnswerHeaders<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = AnswerHeaders<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of header names to values")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut entries: Vec<(Cow<'de, str>, Cow<'de, str>)> = Vec::new();
                while let Some((Text(name), Text(value))) = map.next_entry()? {
                    entries.push((name, value));
                }
                // Stable: equal names stay in order, and the last one wins.
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut kept: Vec<(Cow<'de, str>, Cow<'de, str>)> =
                    Vec::with_capacity(entries.len());
                for entry in entries {
                    match kept.last_mut() {
                        Some(last) if last.0 == entry.0 => *last = entry,
                        _ => kept.push(entry),
                    }
                }
                Ok(AnswerHeaders(kept))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// Property tests of the decoders of what processes send: random and
/// mutated bodies never panic and come back as typed errors, and what
/// decodes is no larger than its input.
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Cases per property: each is one small JSON parse.
    const CASES: u32 = 512;

    const SAMPLES: [&str; 5] = [
        r#"{"Bind":{"path":"/api/:room/*rest","access":"authenticated"}}"#,
        r#"{"WsPublish":{"topic":"lobby","binary":false}}"#,
        r#"{"WsJoin":{"conn":18446744073709551615,"topic":"t"}}"#,
        r#"{"status":200,"headers":{"content-type":"text/plain","x-a":"1","x-a":"2","b":"\u0041"}}"#,
        r#"{"Err":{"BadPath":"x"}}"#,
    ];

    /// Decode `bytes` as each type a process may send; panics only if a
    /// decoder does.
    fn decode_all(bytes: &[u8]) {
        if let Ok(HttpServerRequest::Bind { path, .. } | HttpServerRequest::BindWs { path, .. }) =
            serde_json::from_slice::<HttpServerRequest>(bytes)
        {
            assert!(path.len() <= bytes.len());
        }
        let owned = serde_json::from_slice::<HttpAnswer>(bytes);
        let borrowed = serde_json::from_slice::<HttpAnswerRef>(bytes);
        assert_eq!(owned.is_ok(), borrowed.is_ok());
        if let (Ok(answer), Ok(answer_ref)) = (owned, borrowed) {
            let header_bytes: usize = answer.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(header_bytes <= bytes.len());
            assert_eq!(answer.status, answer_ref.status);
            let same: Vec<(&str, &str)> = answer
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let got: Vec<(&str, &str)> = answer_ref
                .headers
                .0
                .iter()
                .map(|(k, v)| (k.as_ref(), v.as_ref()))
                .collect();
            assert_eq!(same, got);
        }
        let _ = serde_json::from_slice::<HttpServerReply>(bytes);
        let _ = serde_json::from_slice::<HttpServerEvent>(bytes);
    }

    fn mutate(base: &[u8], edits: &[(usize, u8, bool)]) -> Vec<u8> {
        let mut bytes = base.to_vec();
        for &(at, byte, insert) in edits {
            let at = at % (bytes.len() + 1);
            if insert || at == bytes.len() {
                bytes.insert(at, byte);
            } else {
                bytes[at] = byte;
            }
        }
        bytes
    }

    #[test]
    fn the_borrowed_event_encodes_as_the_owned_one() {
        let params = BTreeMap::from([("key".to_string(), "a".to_string())]);
        let query = BTreeMap::new();
        let headers = BTreeMap::from([("host".to_string(), "localhost:8080".to_string())]);
        let owned = HttpServerEvent::Http(IncomingHttp {
            method: "GET".into(),
            path: "/api/notes/a".into(),
            bound_path: "/api/notes/:key".into(),
            params: params.clone(),
            query: query.clone(),
            headers: headers.clone(),
            user: Some("a.os".into()),
        });
        let mut matched = Params::default();
        matched.set(&Arc::from("key"), Cow::Borrowed("a"));
        let borrowed = HttpEventRef::Http(IncomingHttpRef {
            method: "GET",
            path: "/api/notes/a",
            bound_path: "/api/notes/:key",
            params: &matched,
            query: &query,
            headers: &headers,
            user: Some("a.os"),
        });
        let bytes = serde_json::to_vec(&borrowed).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&owned).unwrap());
        assert_eq!(
            serde_json::from_slice::<HttpServerEvent>(&bytes).unwrap(),
            owned
        );
    }

    /// Past the inline room, parameters spill in order; a repeated name
    /// keeps its place and its last value, wherever it lives.
    #[test]
    fn params_keep_pattern_order_past_the_inline_room() {
        let names: Vec<Arc<str>> = (0..INLINE_PARAMS + 3)
            .map(|i| Arc::from(format!("p{i}")))
            .collect();
        let mut params = Params::default();
        for (i, name) in names.iter().enumerate() {
            params.set(name, Cow::Owned(i.to_string()));
        }
        params.set(&names[1], Cow::Borrowed("inline again"));
        params.set(&names[INLINE_PARAMS + 1], Cow::Borrowed("spilled again"));
        let expected: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let value = match i {
                    1 => "inline again".to_string(),
                    i if i == INLINE_PARAMS + 1 => "spilled again".to_string(),
                    i => i.to_string(),
                };
                format!("\"{name}\":\"{value}\"")
            })
            .collect();
        let text = serde_json::to_string(&params).unwrap();
        assert_eq!(text, format!("{{{}}}", expected.join(",")));
        assert_eq!(params.get("p1"), Some("inline again"));
        assert_eq!(params.get("p0"), Some("0"));
        assert_eq!(params.get("nope"), None);
        assert_eq!(serde_json::to_string(&Params::default()).unwrap(), "{}");
    }

    #[test]
    fn samples_decode() {
        assert!(serde_json::from_str::<HttpServerRequest>(SAMPLES[0]).is_ok());
        assert!(serde_json::from_str::<HttpAnswer>(SAMPLES[3]).is_ok());
        assert!(serde_json::from_str::<HttpServerReply>(SAMPLES[4]).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn random_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            decode_all(&bytes);
        }

        #[test]
        fn mutated_bodies_never_panic(
            which in 0..SAMPLES.len(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 1..6),
        ) {
            decode_all(&mutate(SAMPLES[which].as_bytes(), &edits));
        }
    }
}
