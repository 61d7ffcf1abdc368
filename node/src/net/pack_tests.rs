//! Tests of `net/pack.rs`: the hand-written reader and writer held to
//! bincode's serde path, the address slots kept in step, hostile tables.

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
    bincode::serde::encode_into_std_write(&out, &mut body, bincode::config::standard()).unwrap();
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

/// The serde reading of a packed body, the reference for the hand one.
fn by_serde(body: &[u8]) -> Option<PackedIn<'_>> {
    wire::decode_borrowed::<PackedIn<'_>>(body).ok()
}

#[test]
fn the_hand_reader_reads_what_serde_reads() {
    let mut packer = Packer::default();
    let mut bytes = Vec::new();
    let long = format!("{}.os@p:q:r", "x".repeat(TABLE_NAME_BYTES));
    let mut blobbed = km(300, "a.os@p:q:r", &long, None);
    blobbed.blob = Some(Blob {
        mime: Some("text/plain".into()),
        bytes: vec![7; 70_000],
    });
    let mut big_id = km(u64::MAX, "a.os@p:q:r", "b.os@s:t:u", Some("a.os@p:q:r"));
    if let Message::Request(r) = &mut big_id.message {
        r.expects_response = Some(70_000);
        r.body = vec![1; 300];
    }
    for m in [
        km(1, "a.os@p:q:r", "b.os@s:t:u", Some("a.os@p:q:r")),
        km(70_000, "b.os@s:t:u", "a.os@p:q:r", None),
        blobbed,
        big_id,
    ] {
        bytes.clear();
        let mut by_hand = Packer::default();
        let mut serde_packer = Packer::default();
        assert!(by_hand.encode(&Frame::Deliver(m.clone()), &mut bytes));
        let out = serde_packer.packed(&m);
        let serde_bytes = bincode::serde::encode_to_vec(&out, bincode::config::standard()).unwrap();
        assert_eq!(bytes[5..], serde_bytes[..]);
        bytes.clear();
        assert!(packer.encode(&Frame::Deliver(m), &mut bytes));
        let body = &bytes[5..];
        let hand = PackedIn::read(body).unwrap();
        assert_eq!(Some(hand), by_serde(body));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// On random and mutated bodies, the hand reader gives what serde
    /// gives, or refuses where serde refuses.
    #[test]
    fn the_hand_reader_agrees_with_serde(
        body in proptest::collection::vec(any::<u8>(), 0..96),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        prop_assert_eq!(PackedIn::read(&body).ok(), by_serde(&body));
        let mut good = packed(Addr::Define(1, names("a.os")), Addr::Slot(1));
        for (at, byte) in flips {
            let i = at.index(good.len() - 1) + 1;
            good[i] ^= byte;
        }
        prop_assert_eq!(PackedIn::read(&good[1..]).ok(), by_serde(&good[1..]));
    }

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
