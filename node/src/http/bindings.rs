//! The binding table and `http-server:distro:sys`, the native service that
//! processes message to bind paths and to push or publish on WebSockets,
//! and that receives the room events pages watch (`rooms.rs`).
//! It runs on the shared loop of `crate::native` and only implements
//! [`Service::handle`].

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use tracing::debug;

use super::rooms::RoomWatches;
use super::wire::{Access, HttpServerError, HttpServerReply, HttpServerRequest, Params};
use super::ws::WsHub;
use crate::kernel::FastMap;
use crate::native::{Now, Reply, ReplyFuture, Service};
use crate::types::{Address, KernelMessage, ProcessId};

pub use super::common::server_id as process_id;

/// Longest path pattern accepted, and most bindings per process: a
/// process cannot grow the table without bound.
const MAX_PATTERN_BYTES: usize = 512;
const MAX_BINDINGS_PER_PROCESS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// Shared with each match's [`Params`], which names it per request.
    Param(Arc<str>),
    Rest(Arc<str>),
}

#[derive(Debug, Clone)]
pub struct Binding {
    /// Shared with each [`Matched`] (one reference count per request).
    pub pattern: Arc<str>,
    segments: Vec<Segment>,
    /// How many segments are literals: the more, the more specific.
    literals: usize,
    pub access: Access,
    pub websocket: bool,
}

/// A binding that matched a request path `'p`, with its captured
/// parameters.
#[derive(Debug, Clone)]
pub struct Matched<'p> {
    pub pattern: Arc<str>,
    pub access: Access,
    pub websocket: bool,
    pub params: Params<'p>,
}

fn parse_pattern(path: &str) -> Result<Vec<Segment>, HttpServerError> {
    let bad = |why: &str| HttpServerError::BadPath(format!("{path:?}: {why}"));
    if !path.starts_with('/') || path.len() > MAX_PATTERN_BYTES {
        return Err(bad("must start with '/' and be at most 512 bytes"));
    }
    let parts: Vec<&str> = path[1..].split('/').filter(|s| !s.is_empty()).collect();
    let mut segments = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let seg = if let Some(name) = part.strip_prefix(':') {
            Segment::Param(name.into())
        } else if let Some(name) = part.strip_prefix('*') {
            if i + 1 != parts.len() {
                return Err(bad("'*name' must be the last segment"));
            }
            Segment::Rest(name.into())
        } else {
            if part
                .bytes()
                .any(|b| !(b.is_ascii_alphanumeric() || b"-._~".contains(&b)))
                || *part == ".."
            {
                return Err(bad("literal segments are [A-Za-z0-9-._~]"));
            }
            Segment::Literal(part.to_string())
        };
        segments.push(seg);
    }
    Ok(segments)
}

fn match_segments<'p>(segments: &[Segment], path: &'p str) -> Option<Params<'p>> {
    let mut parts = path.split('/').filter(|s| !s.is_empty()).peekable();
    let mut params = Params::default();
    for seg in segments {
        match seg {
            Segment::Literal(lit) => (parts.next()? == lit).then_some(())?,
            Segment::Param(name) => params.set(name, Cow::Borrowed(parts.next()?)),
            Segment::Rest(name) => {
                let rest = parts.by_ref().collect::<Vec<_>>().join("/");
                params.set(name, Cow::Owned(rest));
            }
        }
    }
    parts.peek().is_none().then_some(params)
}

/// Paths bound by each process, below `/<process-id>`.
#[derive(Default)]
pub struct BindingTable {
    /// Keyed by the text of the process id, as a request's path names it:
    /// a request finds its process, with the address to ask, without
    /// parsing an id or building an address.
    by_process: RwLock<FastMap<Box<str>, Owner>>,
    /// Whether each package asked for its own origin (`pkg/ui.json`), read
    /// once; forgotten with the package's bindings and when one of its
    /// processes binds (a new version starting). Keyed by the package's
    /// and publisher's names as a process id shares them, so a request
    /// looks its package up without building `package:publisher`.
    isolated: RwLock<FastMap<PackageKey, bool>>,
}

/// A process that bound paths: its address and its bindings.
struct Owner {
    address: Address,
    bindings: Vec<Binding>,
}

/// (package, publisher) of a process id.
type PackageKey = (Arc<str>, Arc<str>);

fn package_key(process: &ProcessId) -> PackageKey {
    (process.package.clone(), process.publisher.clone())
}

impl BindingTable {
    /// Bind `pattern` for the local process at `owner`.
    pub fn bind(
        &self,
        owner: &Address,
        pattern: &str,
        access: Access,
        websocket: bool,
    ) -> HttpServerReply {
        let segments = parse_pattern(pattern)?;
        self.isolated
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&package_key(&owner.process));
        let mut table = self.by_process.write().unwrap_or_else(|e| e.into_inner());
        let list = &mut table
            .entry(owner.process.to_string().into())
            .or_insert_with(|| Owner {
                address: owner.clone(),
                bindings: Vec::new(),
            })
            .bindings;
        list.retain(|b| b.segments != segments);
        if list.len() >= MAX_BINDINGS_PER_PROCESS {
            return Err(HttpServerError::BadRequest(format!(
                "at most {MAX_BINDINGS_PER_PROCESS} bindings per process"
            )));
        }
        let literals = segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        list.push(Binding {
            pattern: pattern.into(),
            segments,
            literals,
            access,
            websocket,
        });
        debug!(owner = %owner.process, pattern, ?access, websocket, "bound");
        Ok(0)
    }

    pub fn unbind(&self, owner: &ProcessId, pattern: &str) -> HttpServerReply {
        let segments = parse_pattern(pattern)?;
        let mut table = self.by_process.write().unwrap_or_else(|e| e.into_inner());
        let Some(owner) = table.get_mut(owner.to_string().as_str()) else {
            return Ok(0);
        };
        let before = owner.bindings.len();
        owner.bindings.retain(|b| b.segments != segments);
        Ok((before - owner.bindings.len()) as u64)
    }

    /// Drop every binding of the processes of `package_id`
    /// (`package:publisher`), before it is replaced or removed.
    pub fn forget_package(&self, package_id: &str) {
        self.isolated
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(package, publisher), _| {
                package_id.split_once(':') != Some((&**package, &**publisher))
            });
        self.by_process
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, owner| owner.address.process.package_id() != package_id);
    }

    /// Whether the package of `process` is isolated, if known.
    pub fn isolated(&self, process: &ProcessId) -> Option<bool> {
        self.isolated
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&package_key(process))
            .copied()
    }

    /// Note whether the package of `process` is isolated.
    pub fn set_isolated(&self, process: &ProcessId, isolated: bool) {
        self.isolated
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(package_key(process), isolated);
    }

    /// The process whose id's text is `owner`, if it bound paths: its
    /// address, and its first binding matching `path` (literal segments
    /// before parameters: bindings are tried most specific first).
    pub fn lookup<'p>(&self, owner: &str, path: &'p str) -> Option<(Address, Option<Matched<'p>>)> {
        let table = self.by_process.read().unwrap_or_else(|e| e.into_inner());
        let owner = table.get(owner)?;
        let mut best: Option<(usize, Matched)> = None;
        for b in &owner.bindings {
            if best.as_ref().is_some_and(|(l, _)| b.literals <= *l) {
                continue;
            }
            if let Some(params) = match_segments(&b.segments, path) {
                let m = Matched {
                    pattern: b.pattern.clone(),
                    access: b.access,
                    websocket: b.websocket,
                    params,
                };
                best = Some((b.literals, m));
            }
        }
        Some((owner.address.clone(), best.map(|(_, m)| m)))
    }

    /// The first binding of `owner` matching `path`
    /// ([`BindingTable::lookup`] by process id); the proxy looks up by the
    /// id's text, so only the tests need this.
    #[cfg(test)]
    pub fn find<'p>(&self, owner: &ProcessId, path: &'p str) -> Option<Matched<'p>> {
        self.lookup(&owner.to_string(), path)?.1
    }
}

/// The `http-server:distro:sys` service.
pub struct HttpServerService {
    pub bindings: Arc<BindingTable>,
    pub hub: Arc<WsHub>,
    pub rooms: Arc<RoomWatches>,
    pub our: Arc<str>,
}

impl HttpServerService {
    fn apply(
        &self,
        source: &Address,
        request: HttpServerRequest,
        payload: Vec<u8>,
    ) -> HttpServerReply {
        let owner = &source.process;
        match request {
            HttpServerRequest::Bind { path, access } => {
                self.bindings.bind(source, &path, access, false)
            }
            HttpServerRequest::BindWs { path, access } => {
                self.bindings.bind(source, &path, access, true)
            }
            HttpServerRequest::Unbind { path } => self.bindings.unbind(owner, &path),
            HttpServerRequest::WsPush { conn, binary } => {
                self.hub.push(owner, conn, binary, payload)
            }
            HttpServerRequest::WsPublish { topic, binary } => {
                Ok(self.hub.publish(owner, &topic, binary, payload))
            }
            HttpServerRequest::WsJoin { conn, topic } => self.hub.join(owner, conn, topic),
            HttpServerRequest::WsLeave { conn, topic } => self.hub.leave(owner, conn, &topic),
            HttpServerRequest::WsClose { conn } => self.hub.close(owner, conn),
        }
    }
}

impl HttpServerService {
    /// A request of a process: bind, push, publish and so on.
    fn serve(&self, km: KernelMessage) -> Reply {
        let reply: HttpServerReply = if *km.source.node != *self.our {
            Err(HttpServerError::BadRequest(
                "only local processes may bind".into(),
            ))
        } else {
            let body = match &km.message {
                crate::types::Message::Request(r) => r.body.as_slice(),
                crate::types::Message::Response(_) => &[],
            };
            match serde_json::from_slice::<HttpServerRequest>(body) {
                Ok(request) => {
                    let payload = km.blob.map(|b| b.bytes).unwrap_or_default();
                    self.apply(&km.source, request, payload)
                }
                Err(e) => Err(HttpServerError::BadRequest(e.to_string())),
            }
        };
        Reply::json(&reply)
    }
}

impl Service for HttpServerService {
    fn handle(&self, km: KernelMessage) -> ReplyFuture<'_> {
        Box::pin(async move {
            if self.rooms.on_hub_message(&km) {
                return None;
            }
            Some(self.serve(km))
        })
    }

    /// Every request but the rooms hub's is served in its sender's own
    /// call: a publish reaches the connections' buffers without waiting
    /// for two task wake-ups. The hub's events keep the queue (they take
    /// the watch table's lock and may ask the hub back).
    fn handle_now(&self, km: KernelMessage) -> Now {
        if crate::rooms::is_hub(&km.source.process) {
            return Now::Later(km);
        }
        Now::Served(Some(self.serve(km)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_capture_params_and_rest() {
        let t = BindingTable::default();
        let p: ProcessId = "chat:chat:demo.os".parse().unwrap();
        let a = Address::new("a.os", p.clone());
        t.bind(&a, "/api/rooms/:room", Access::Authenticated, false)
            .unwrap();
        t.bind(&a, "/api/rooms/lobby", Access::Public, false)
            .unwrap();
        t.bind(&a, "/files/*rest", Access::Public, false).unwrap();
        let m = t.find(&p, "/api/rooms/kitchen").unwrap();
        assert_eq!(m.params.get("room"), Some("kitchen"));
        assert_eq!(
            t.find(&p, "/api/rooms/lobby").unwrap().access,
            Access::Public
        );
        assert_eq!(
            t.find(&p, "/files/a/b.txt").unwrap().params.get("rest"),
            Some("a/b.txt")
        );
        assert!(t.find(&p, "/api/rooms").is_none());
        assert!(t.find(&p, "/api/rooms/a/b").is_none());
        assert!(t.bind(&a, "no-slash", Access::Public, false).is_err());
        assert!(t.bind(&a, "/a/*x/b", Access::Public, false).is_err());
        assert_eq!(t.unbind(&p, "/files/*rest"), Ok(1));
        // By the id's text, as a request names it: the owner's address
        // and the match; another process, or another spelling, finds none.
        let (owner, m) = t.lookup("chat:chat:demo.os", "/api/rooms/lobby").unwrap();
        assert_eq!((owner, m.unwrap().access), (a, Access::Public));
        assert!(t
            .lookup("chat:chat:demo.os", "/nothing")
            .unwrap()
            .1
            .is_none());
        assert!(t.lookup("Chat:chat:demo.os", "/api/rooms/lobby").is_none());
    }

    /// Parameters encode as a JSON object, each name once: a name the
    /// pattern repeats keeps its last value.
    #[test]
    fn params_are_an_object_with_each_name_once() {
        let t = BindingTable::default();
        let p: ProcessId = "chat:chat:demo.os".parse().unwrap();
        let a = Address::new("a.os", p.clone());
        t.bind(&a, "/a/:x/:x", Access::Public, false).unwrap();
        t.bind(&a, "/f/:id/*rest", Access::Public, false).unwrap();
        let m = t.find(&p, "/a/1/2").unwrap();
        assert_eq!(m.params.get("x"), Some("2"));
        assert_eq!(serde_json::to_string(&m.params).unwrap(), r#"{"x":"2"}"#);
        let m = t.find(&p, "/f/7/a%22/b").unwrap();
        assert_eq!(
            serde_json::to_string(&m.params).unwrap(),
            r#"{"id":"7","rest":"a%22/b"}"#
        );
    }
}
