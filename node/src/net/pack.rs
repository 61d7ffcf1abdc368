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
use crate::types::{valid_name, Address, AddressParts, Blob, KernelMessage, Message, ProcessId};

/// The first byte of a packed frame's body.
pub const PACKED: u8 = 4;
/// Slots in one stream's address table.
pub const TABLE_SLOTS: usize = 256;
/// Bytes of names (node, process, package, publisher) an address may hold
/// to take a slot; a longer one goes inline each time.
pub const TABLE_NAME_BYTES: usize = 192;

#[derive(Serialize, Deserialize)]
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

#[derive(Serialize, Deserialize)]
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

#[derive(Deserialize)]
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

    /// Append `frame`, packed, to `buf` (length prefix included). False if
    /// it could not be encoded: the table may then differ from the
    /// reader's, so the stream must end.
    pub fn encode(&mut self, frame: &Frame, buf: &mut Vec<u8>) -> bool {
        let Frame::Deliver(km) = frame else {
            let start = buf.len();
            wire::encode(frame, buf);
            return buf.len() > start;
        };
        let packed = PackedOut {
            id: km.id,
            source: self.addr(&km.source),
            target: self.addr(&km.target),
            rsvp: km.rsvp.as_ref().map(|a| self.addr(a)),
            message: &km.message,
            blob: &km.blob,
        };
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        buf.push(PACKED);
        let config = bincode::config::standard();
        if bincode::serde::encode_into_std_write(&packed, buf, config).is_err() {
            buf.truncate(start);
            return false;
        }
        let len = (buf.len() - start - 4) as u32;
        buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        true
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
        let packed: PackedIn<'_> = wire::decode_borrowed(rest)?;
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
mod tests {
    use super::*;
    use crate::types::{Request, Response};
    use proptest::prelude::*;

    fn km(id: u64, source: &str, target: &str, rsvp: Option<&str>) -> KernelMessage {
        let message = match rsvp {
            Some(_) => Message::Request(Request {
                inherit: false,
                expects_response: Some(5000),
                body: vec![id as u8; 3],
                metadata: Some("m".into()),
            }),
            None => Message::Response(Response {
                body: vec![1, 2],
                metadata: None,
            }),
        };
        KernelMessage {
            id,
            source: source.parse().unwrap(),
            target: target.parse().unwrap(),
            rsvp: rsvp.map(|r| r.parse().unwrap()),
            message,
            blob: None,
        }
    }

    /// Decode a run of frames as a reader would.
    fn read_all(unpacker: &mut Unpacker, mut bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            frames.push(unpacker.decode(&bytes[4..4 + len])?);
            bytes = &bytes[4 + len..];
        }
        Ok(frames)
    }

    #[test]
    fn packed_frames_round_trip_and_reuse_slots() {
        let mut packer = Packer::default();
        let mut bytes = Vec::new();
        let sent = [
            km(1, "a.os@p:q:r", "b.os@s:t:u", Some("a.os@p:q:r")),
            km(2, "b.os@s:t:u", "a.os@p:q:r", None),
            km(3, "a.os@p:q:r", "b.os@s:t:u", Some("a.os@p:q:r")),
        ];
        let mut sizes = Vec::new();
        for m in &sent {
            let before = bytes.len();
            assert!(packer.encode(&Frame::Deliver(m.clone()), &mut bytes));
            sizes.push(bytes.len() - before);
        }
        // The third frame names both addresses by slot only.
        assert!(sizes[2] < sizes[0] - 20, "{sizes:?}");
        assert!(packer.encode(&Frame::Moved, &mut bytes));
        let got = read_all(&mut Unpacker::default(), &bytes).unwrap();
        assert_eq!(got.len(), 4);
        for (m, f) in sent.iter().zip(&got) {
            match f {
                Frame::Deliver(k) => assert_eq!(k, m),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(got[3], Frame::Moved));
    }

    #[test]
    fn shared_addresses_stay_in_step_while_their_slots_are_reused() {
        // One shared sender and a few shared targets, as a process sends:
        // found by pointer, until fresh targets wrap the table around and
        // take their slots, when they are defined again.
        let me: Address = "me.os@p:q:r".parse().unwrap();
        let usual: Vec<Address> = (0..3)
            .map(|i| format!("u{i}.os@p:q:r").parse().unwrap())
            .collect();
        let mut packer = Packer::default();
        let mut bytes = Vec::new();
        let mut sent = Vec::new();
        for i in 0..(3 * TABLE_SLOTS as u64) {
            let mut m = km(i, "x.os@p:q:r", &format!("n{i}.os@p:q:r"), None);
            m.source = me.clone();
            if i % 2 == 0 {
                m.target = usual[i as usize % usual.len()].clone();
            }
            m.rsvp = Some(me.clone());
            assert!(packer.encode(&Frame::Deliver(m.clone()), &mut bytes));
            sent.push(m);
        }
        let got = read_all(&mut Unpacker::default(), &bytes).unwrap();
        assert_eq!(got.len(), sent.len());
        for (m, f) in sent.iter().zip(&got) {
            match f {
                Frame::Deliver(k) => assert_eq!(k, m),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn slots_are_reused_past_the_table_and_stay_in_step() {
        let mut packer = Packer::default();
        let mut unpacker = Unpacker::default();
        let mut bytes = Vec::new();
        let mut sent = Vec::new();
        for i in 0..(3 * TABLE_SLOTS as u64) {
            // Each frame names a fresh target and an old one.
            let target = format!("n{i}.os@p:q:r");
            let old = format!("n{}.os@p:q:r", i / 2);
            let m = km(i, &target, &old, Some(&target));
            assert!(packer.encode(&Frame::Deliver(m.clone()), &mut bytes));
            sent.push(m);
        }
        let got = read_all(&mut unpacker, &bytes).unwrap();
        assert!(unpacker.slots.len() <= TABLE_SLOTS);
        for (m, f) in sent.iter().zip(&got) {
            assert!(matches!(f, Frame::Deliver(k) if k == m));
        }
    }

    #[test]
    fn long_addresses_go_inline() {
        let long = format!("{}.os@p:q:r", "x".repeat(TABLE_NAME_BYTES));
        let mut packer = Packer::default();
        let mut bytes = Vec::new();
        let m = km(1, &long, &long, None);
        assert!(packer.encode(&Frame::Deliver(m.clone()), &mut bytes));
        assert!(packer.slots.is_empty());
        let got = read_all(&mut Unpacker::default(), &bytes).unwrap();
        assert!(matches!(&got[0], Frame::Deliver(k) if *k == m));
    }

    fn packed(source: Addr<'_>, target: Addr<'_>) -> Vec<u8> {
        let message = Message::Response(Response {
            body: vec![],
            metadata: None,
        });
        let out = PackedOut {
            id: 1,
            source,
            target,
            rsvp: None,
            message: &message,
            blob: &None,
        };
        let mut body = vec![PACKED];
        bincode::serde::encode_into_std_write(&out, &mut body, bincode::config::standard())
            .unwrap();
        body
    }

    fn names(node: &str) -> Names<'_> {
        Names {
            node,
            process: "p",
            package: "q",
            publisher: "r",
        }
    }

    #[test]
    fn hostile_tables_are_refused() {
        let bad = |body: Vec<u8>| {
            assert!(matches!(
                Unpacker::default().decode(&body),
                Err(FrameError::Malformed(_))
            ))
        };
        // A slot never defined.
        bad(packed(Addr::Slot(3), Addr::Slot(3)));
        // A slot past the table.
        bad(packed(
            Addr::Define(TABLE_SLOTS as u16, names("a.os")),
            Addr::Slot(0),
        ));
        // A definition longer than a slot may hold.
        let long = "x".repeat(TABLE_NAME_BYTES);
        bad(packed(Addr::Define(0, names(&long)), Addr::Slot(0)));
        // Names that are not valid, defined or inline.
        bad(packed(Addr::Define(0, names("A@b")), Addr::Slot(0)));
        bad(packed(Addr::Inline(names("a:b")), Addr::Inline(names("a"))));
        bad(packed(Addr::Inline(names("")), Addr::Inline(names("a"))));
        // A good one decodes.
        let ok = packed(Addr::Define(7, names("a.os")), Addr::Slot(7));
        let mut unpacker = Unpacker::default();
        assert!(
            matches!(unpacker.decode(&ok), Ok(Frame::Deliver(k)) if k.target.is("a.os", "p", "q", "r"))
        );
        assert_eq!(unpacker.slots.len(), 8);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Random and mutated packed bodies never panic.
        #[test]
        fn random_packed_bodies_decode_or_fail_cleanly(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut with_tag = vec![PACKED];
            with_tag.extend_from_slice(&body);
            let _ = Unpacker::default().decode(&with_tag);
            let mut good = packed(Addr::Define(1, names("a.os")), Addr::Slot(1));
            for (at, byte) in flips {
                let i = at.index(good.len() - 1) + 1;
                good[i] ^= byte;
            }
            let mut unpacker = Unpacker::default();
            if unpacker.decode(&good).is_ok() {
                prop_assert!(unpacker.slots.len() <= TABLE_SLOTS);
            }
        }
    }
}
