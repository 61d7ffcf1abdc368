//! Packed frames: on a stream opened with the packed protocol, a
//! `Deliver` names its addresses through the stream's address table, so
//! an address crosses the stream as text once and as a slot number after.
//!
//! A packed frame is the byte [`PACKED`] (the first value that is no
//! `Frame` variant), then the bincode of [`PackedOut`]. Each address is a
//! slot already defined on this stream, a definition of a slot (which
//! replaces what it held), or inline text (too long for the table). The
//! sender and the reader apply definitions in field order (source, target,
//! rsvp), so both tables stay equal as long as bytes keep their order,
//! which a stream guarantees. Other frames are encoded as in `wire`.
//!
//! Why: bincode of an `Address` went through `Display` and `FromStr`
//! (formatting, splitting, validating and four allocations per address,
//! three addresses per request); in `kit bench net`'s fire-and-forget
//! phase that was about a fifth of all CPU.
//!
//! **Invariant:** the reader's table is bounded: at most [`TABLE_SLOTS`]
//! slots, each holding an address of at most [`TABLE_NAME_BYTES`] bytes
//! of names. A slot number out of range, a reference to an empty slot, a
//! definition too long, or a name that is not valid ends the stream
//! (`Malformed`), like any other bad frame.

use serde::{Deserialize, Serialize};

use super::wire::{self, Frame, FrameError};
use crate::kernel::FastMap;
use crate::types::{
    valid_name, Address, AddressParts, Blob, KernelMessage, Message, ProcessId, Request, Response,
};

/// The first byte of a packed frame's body.
pub const PACKED: u8 = 4;
/// Slots in one stream's address table.
pub const TABLE_SLOTS: usize = 256;
/// Bytes of names (node, process, package, publisher) an address may hold
/// to take a slot; a longer one goes inline each time.
pub const TABLE_NAME_BYTES: usize = 192;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Names<'a> {
    node: &'a str,
    process: &'a str,
    package: &'a str,
    publisher: &'a str,
}

impl<'a> Names<'a> {
    fn of(a: &'a Address) -> Self {
        Self {
            node: &a.node,
            process: &a.process.process,
            package: &a.process.package,
            publisher: &a.process.publisher,
        }
    }

    fn bytes(&self) -> usize {
        self.node.len() + self.process.len() + self.package.len() + self.publisher.len()
    }

    /// The address these names make, if every name is valid.
    fn address(&self) -> Result<Address, FrameError> {
        let id = ProcessId::new(self.process, self.package, self.publisher);
        if !valid_name(self.node, true) || !id.is_valid() {
            return Err(FrameError::Malformed("invalid name in an address".into()));
        }
        Ok(Address::new(self.node, id))
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Addr<'a> {
    Slot(u16),
    Define(u16, #[serde(borrow)] Names<'a>),
    Inline(#[serde(borrow)] Names<'a>),
}

#[derive(Serialize)]
struct PackedOut<'a> {
    id: u64,
    source: Addr<'a>,
    target: Addr<'a>,
    rsvp: Option<Addr<'a>>,
    message: &'a Message,
    blob: &'a Option<Blob>,
}

/// The decoded parts of a packed frame: [`PackedIn::read`] reads them by
/// hand; the serde derive is the reference its test holds it to.
#[derive(Debug, PartialEq, Deserialize)]
struct PackedIn<'a> {
    id: u64,
    #[serde(borrow)]
    source: Addr<'a>,
    #[serde(borrow)]
    target: Addr<'a>,
    #[serde(borrow)]
    rsvp: Option<Addr<'a>>,
    message: Message,
    blob: Option<Blob>,
}

/// Reads the bincode (standard configuration: varint integers,
/// little-endian) of a packed frame by hand: the serde path through bincode
/// cost about 8% of the reader's CPU in `kit bench net`'s fire-and-forget
/// phase, with a zeroed allocation and a copy per body. Every length is
/// checked against the bytes left, so nothing is allocated past the
/// frame's own size.
struct Bincode<'a> {
    bytes: &'a [u8],
}

fn malformed(what: &str) -> FrameError {
    FrameError::Malformed(format!("packed frame: {what}"))
}

impl<'a> Bincode<'a> {
    fn byte(&mut self) -> Result<u8, FrameError> {
        let (&b, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| malformed("ends early"))?;
        self.bytes = rest;
        Ok(b)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or_else(|| malformed("ends early"))?;
        self.bytes = rest;
        Ok(*head)
    }

    fn slice(&mut self, len: u64) -> Result<&'a [u8], FrameError> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| malformed("a length past its end"))?;
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(match self.byte()? {
            b @ 0..=250 => u64::from(b),
            251 => u64::from(u16::from_le_bytes(self.take()?)),
            252 => u64::from(u32::from_le_bytes(self.take()?)),
            253 => u64::from_le_bytes(self.take()?),
            _ => return Err(malformed("an integer wider than 64 bits")),
        })
    }

    /// A varint no wider than `u16`, as bincode reads one: a wider tag is
    /// refused even for a small value.
    fn u16(&mut self) -> Result<u16, FrameError> {
        match self.byte()? {
            b @ 0..=250 => Ok(u16::from(b)),
            251 => Ok(u16::from_le_bytes(self.take()?)),
            _ => Err(malformed("a slot number wider than 16 bits")),
        }
    }

    /// An enum's variant index: a `u32` varint, as bincode reads one.
    fn variant(&mut self) -> Result<u32, FrameError> {
        match self.byte()? {
            b @ 0..=250 => Ok(u32::from(b)),
            251 => Ok(u32::from(u16::from_le_bytes(self.take()?))),
            252 => Ok(u32::from_le_bytes(self.take()?)),
            _ => Err(malformed("a variant index wider than 32 bits")),
        }
    }

    fn flag(&mut self) -> Result<bool, FrameError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("a flag neither 0 nor 1")),
        }
    }

    fn str(&mut self) -> Result<&'a str, FrameError> {
        let len = self.u64()?;
        std::str::from_utf8(self.slice(len)?).map_err(|_| malformed("text not UTF-8"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, FrameError> {
        let len = self.u64()?;
        Ok(self.slice(len)?.to_vec())
    }

    fn text(&mut self) -> Result<Option<String>, FrameError> {
        Ok(if self.flag()? {
            Some(self.str()?.to_owned())
        } else {
            None
        })
    }

    fn names(&mut self) -> Result<Names<'a>, FrameError> {
        Ok(Names {
            node: self.str()?,
            process: self.str()?,
            package: self.str()?,
            publisher: self.str()?,
        })
    }

    fn addr(&mut self) -> Result<Addr<'a>, FrameError> {
        match self.variant()? {
            0 => Ok(Addr::Slot(self.u16()?)),
            1 => Ok(Addr::Define(self.u16()?, self.names()?)),
            2 => Ok(Addr::Inline(self.names()?)),
            _ => Err(malformed("no such address form")),
        }
    }

    fn message(&mut self) -> Result<Message, FrameError> {
        match self.variant()? {
            0 => Ok(Message::Request(Request {
                inherit: self.flag()?,
                expects_response: if self.flag()? {
                    Some(self.u64()?)
                } else {
                    None
                },
                body: self.bytes()?,
                metadata: self.text()?,
            })),
            1 => Ok(Message::Response(Response {
                body: self.bytes()?,
                metadata: self.text()?,
            })),
            _ => Err(malformed("no such message kind")),
        }
    }
}

impl<'a> PackedIn<'a> {
    /// Read a packed frame's body (after [`PACKED`]), all of it.
    fn read(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let mut r = Bincode { bytes };
        let packed = PackedIn {
            id: r.u64()?,
            source: r.addr()?,
            target: r.addr()?,
            rsvp: if r.flag()? { Some(r.addr()?) } else { None },
            message: r.message()?,
            blob: if r.flag()? {
                Some(Blob {
                    mime: r.text()?,
                    bytes: r.bytes()?,
                })
            } else {
                None
            },
        };
        if !r.bytes.is_empty() {
            return Err(FrameError::Malformed(format!(
                "{} bytes after the frame",
                r.bytes.len()
            )));
        }
        Ok(packed)
    }
}

/// Slots a [`Packer`] finds by the address's allocation, before hashing
/// its names: a stream's frames mostly repeat a few `Address` values (a
/// sender's own, its usual targets), shared, not rebuilt.
const RECENT: usize = 4;

/// The sending side of a stream's address table.
#[derive(Default)]
pub struct Packer {
    slots: Vec<Address>,
    index: FastMap<Address, u16>,
    /// The next slot to reuse once all are taken (oldest defined first).
    hand: usize,
    /// Addresses found or defined lately and their slots, matched by
    /// pointer; an entry goes when its slot is defined anew.
    recent: [Option<(Address, u16)>; RECENT],
    /// The entry of `recent` to replace next.
    recent_hand: usize,
}

impl Packer {
    fn addr<'a>(&mut self, a: &'a Address) -> Addr<'a> {
        let parts: &AddressParts = a;
        for (known, slot) in self.recent.iter().flatten() {
            let known: &AddressParts = known;
            if std::ptr::eq(known, parts) {
                return Addr::Slot(*slot);
            }
        }
        if let Some(&slot) = self.index.get(a) {
            self.remember(a, slot);
            return Addr::Slot(slot);
        }
        let names = Names::of(a);
        if names.bytes() > TABLE_NAME_BYTES {
            return Addr::Inline(names);
        }
        let slot = if self.slots.len() < TABLE_SLOTS {
            self.slots.push(a.clone());
            self.slots.len() - 1
        } else {
            let slot = self.hand;
            self.hand = (self.hand + 1) % TABLE_SLOTS;
            let old = std::mem::replace(&mut self.slots[slot], a.clone());
            self.index.remove(&old);
            for entry in &mut self.recent {
                if entry.as_ref().is_some_and(|(_, s)| usize::from(*s) == slot) {
                    *entry = None;
                }
            }
            slot
        };
        self.index.insert(a.clone(), slot as u16);
        self.remember(a, slot as u16);
        Addr::Define(slot as u16, names)
    }

    /// Find `a` (at `slot`) by pointer next time.
    fn remember(&mut self, a: &Address, slot: u16) {
        self.recent[self.recent_hand] = Some((a.clone(), slot));
        self.recent_hand = (self.recent_hand + 1) % RECENT;
    }

    /// The packed form of `km`, its addresses by this packer's table.
    fn packed<'a>(&mut self, km: &'a KernelMessage) -> PackedOut<'a> {
        PackedOut {
            id: km.id,
            source: self.addr(&km.source),
            target: self.addr(&km.target),
            rsvp: km.rsvp.as_ref().map(|a| self.addr(a)),
            message: &km.message,
            blob: &km.blob,
        }
    }

    /// Append `frame`, packed, to `buf` (length prefix included). False if
    /// it could not be encoded: the table may then differ from the
    /// reader's, so the stream must end.
    pub fn encode(&mut self, frame: &Frame, buf: &mut Vec<u8>) -> bool {
        let Frame::Deliver(km) = frame else {
            let start = buf.len();
            wire::encode(frame, buf);
            return buf.len() > start;
        };
        let packed = self.packed(km);
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        buf.push(PACKED);
        packed.write(buf);
        let Ok(len) = u32::try_from(buf.len() - start - 4) else {
            buf.truncate(start);
            return false;
        };
        buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        true
    }
}

/// Writes the bincode (standard configuration) of a packed frame by hand,
/// the same bytes as serde's path (a test holds it to them), without its
/// calls per field.
fn put_u64(buf: &mut Vec<u8>, v: u64) {
    if v < 251 {
        buf.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        buf.push(251);
        buf.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        buf.push(252);
        buf.extend_from_slice(&v.to_le_bytes());
    } else {
        buf.push(253);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_text(buf: &mut Vec<u8>, text: &Option<String>) {
    match text {
        Some(t) => {
            buf.push(1);
            put_bytes(buf, t.as_bytes());
        }
        None => buf.push(0),
    }
}

impl Addr<'_> {
    fn write(&self, buf: &mut Vec<u8>) {
        let names = |buf: &mut Vec<u8>, n: &Names<'_>| {
            for part in [n.node, n.process, n.package, n.publisher] {
                put_bytes(buf, part.as_bytes());
            }
        };
        match self {
            Addr::Slot(slot) => {
                buf.push(0);
                put_u64(buf, u64::from(*slot));
            }
            Addr::Define(slot, n) => {
                buf.push(1);
                put_u64(buf, u64::from(*slot));
                names(buf, n);
            }
            Addr::Inline(n) => {
                buf.push(2);
                names(buf, n);
            }
        }
    }
}

impl PackedOut<'_> {
    fn write(&self, buf: &mut Vec<u8>) {
        put_u64(buf, self.id);
        self.source.write(buf);
        self.target.write(buf);
        match &self.rsvp {
            Some(a) => {
                buf.push(1);
                a.write(buf);
            }
            None => buf.push(0),
        }
        match self.message {
            Message::Request(r) => {
                buf.push(0);
                buf.push(u8::from(r.inherit));
                match r.expects_response {
                    Some(ms) => {
                        buf.push(1);
                        put_u64(buf, ms);
                    }
                    None => buf.push(0),
                }
                put_bytes(buf, &r.body);
                put_text(buf, &r.metadata);
            }
            Message::Response(r) => {
                buf.push(1);
                put_bytes(buf, &r.body);
                put_text(buf, &r.metadata);
            }
        }
        match self.blob {
            Some(blob) => {
                buf.push(1);
                put_text(buf, &blob.mime);
                put_bytes(buf, &blob.bytes);
            }
            None => buf.push(0),
        }
    }
}

/// The reading side of a stream's address table.
#[derive(Default)]
pub struct Unpacker {
    slots: Vec<Option<Address>>,
}

impl Unpacker {
    fn resolve(&mut self, addr: Addr<'_>) -> Result<Address, FrameError> {
        match addr {
            Addr::Slot(slot) => self
                .slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .cloned()
                .ok_or_else(|| FrameError::Malformed(format!("address slot {slot} is empty"))),
            Addr::Define(slot, names) => {
                let slot = slot as usize;
                if slot >= TABLE_SLOTS {
                    return Err(FrameError::Malformed(format!(
                        "address slot {slot} is past the table's {TABLE_SLOTS}"
                    )));
                }
                if names.bytes() > TABLE_NAME_BYTES {
                    return Err(FrameError::Malformed(format!(
                        "an address of {} bytes defined in the table (at most {TABLE_NAME_BYTES})",
                        names.bytes()
                    )));
                }
                let address = names.address()?;
                if self.slots.len() <= slot {
                    self.slots.resize(slot + 1, None);
                }
                self.slots[slot] = Some(address.clone());
                Ok(address)
            }
            Addr::Inline(names) => names.address(),
        }
    }

    /// Decode a frame body from a packed stream: packed or plain.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Frame, FrameError> {
        let Some((&PACKED, rest)) = bytes.split_first() else {
            return wire::decode(bytes);
        };
        let packed = PackedIn::read(rest)?;
        let source = self.resolve(packed.source)?;
        let target = self.resolve(packed.target)?;
        let rsvp = match packed.rsvp {
            Some(a) => Some(self.resolve(a)?),
            None => None,
        };
        Ok(Frame::Deliver(KernelMessage {
            id: packed.id,
            source,
            target,
            rsvp,
            message: packed.message,
            blob: packed.blob,
        }))
    }
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
