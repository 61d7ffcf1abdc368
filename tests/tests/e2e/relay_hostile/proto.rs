//! Circuit relay v2 messages written and read by hand: each is a protobuf
//! message behind an unsigned-varint length, as in libp2p's
//! `message.proto`. An attacker speaks the protocol directly rather than
//! through a polite client, so the tests do too.

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};

pub const HOP: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/hop");
pub const STOP: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/stop");

/// libp2p's relay reads and writes messages of at most this many bytes.
const MAX_MESSAGE_BYTES: usize = 4096;

/// A relay's answer, as libp2p's `Status` enum numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    ReservationRefused,
    ResourceLimitExceeded,
    PermissionDenied,
    ConnectionFailed,
    NoReservation,
    MalformedMessage,
    UnexpectedMessage,
    Unknown(u64),
}

impl Status {
    fn from_code(code: u64) -> Self {
        match code {
            100 => Self::Ok,
            200 => Self::ReservationRefused,
            201 => Self::ResourceLimitExceeded,
            202 => Self::PermissionDenied,
            203 => Self::ConnectionFailed,
            204 => Self::NoReservation,
            400 => Self::MalformedMessage,
            401 => Self::UnexpectedMessage,
            other => Self::Unknown(other),
        }
    }
}

/// What a relay sends: a hop `STATUS` answer, or a stop `CONNECT` asking
/// us to accept a circuit. Only the fields the tests look at.
#[derive(Debug, Default, Clone)]
pub struct Message {
    pub status: Option<Status>,
    /// The peer a stop `CONNECT` comes from.
    pub peer: Option<PeerId>,
    /// The circuit limits the relay announces.
    pub limit_secs: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// A granted reservation: its expiry (Unix seconds) and how many relay
    /// addresses it lists.
    pub expires: Option<u64>,
    pub reservation_addrs: usize,
}

/// A hop `RESERVE`.
pub fn reserve() -> Vec<u8> {
    framed(&[0x08, 0x00])
}

/// A hop `CONNECT` to `to`.
pub fn connect(to: &PeerId) -> Vec<u8> {
    let mut peer = Vec::new();
    bytes_field(1, &to.to_bytes(), &mut peer);
    let mut message = vec![0x08, 0x01];
    bytes_field(2, &peer, &mut message);
    framed(&message)
}

/// A stop `STATUS OK`: we accept the circuit.
pub fn stop_ok() -> Vec<u8> {
    framed(&[0x08, 0x01, 0x20, 100])
}

/// Write one message.
pub async fn send(stream: &mut libp2p::Stream, bytes: &[u8]) -> Result<(), String> {
    stream.write_all(bytes).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())
}

/// Read one hop message (`stop == false`) or stop message.
pub async fn receive(stream: &mut libp2p::Stream, stop: bool) -> Result<Message, String> {
    let mut length = 0u64;
    for shift in (0..64).step_by(7) {
        let mut byte = [0u8];
        stream
            .read_exact(&mut byte)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        length |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let length = usize::try_from(length).map_err(|_| "length overflows".to_string())?;
    if length > MAX_MESSAGE_BYTES {
        return Err(format!("a {length}-byte message"));
    }
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("cut short: {e}"))?;
    parse(&body, stop)
}

fn parse(body: &[u8], stop: bool) -> Result<Message, String> {
    // Hop: peer 2, reservation 3, limit 4, status 5. Stop: peer 2,
    // limit 3, status 4.
    let (limit_field, status_field) = if stop { (3, 4) } else { (4, 5) };
    let mut message = Message::default();
    for (number, field) in fields(body)? {
        match (number, field) {
            (2, Field::Bytes(peer)) => {
                for (n, f) in fields(peer)? {
                    if let (1, Field::Bytes(id)) = (n, f) {
                        message.peer = Some(PeerId::from_bytes(id).map_err(|e| e.to_string())?);
                    }
                }
            }
            (3, Field::Bytes(reservation)) if !stop => {
                for (n, f) in fields(reservation)? {
                    match (n, f) {
                        (1, Field::Varint(expires)) => message.expires = Some(expires),
                        (2, Field::Bytes(_)) => message.reservation_addrs += 1,
                        _ => {}
                    }
                }
            }
            (n, Field::Bytes(limit)) if n == limit_field => {
                for (n, f) in fields(limit)? {
                    match (n, f) {
                        (1, Field::Varint(secs)) => message.limit_secs = Some(secs),
                        (2, Field::Varint(bytes)) => message.limit_bytes = Some(bytes),
                        _ => {}
                    }
                }
            }
            (n, Field::Varint(code)) if n == status_field => {
                message.status = Some(Status::from_code(code))
            }
            _ => {}
        }
    }
    Ok(message)
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of one protobuf message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut buf)?),
            2 => {
                let n = usize::try_from(varint(&mut buf)?).map_err(|e| e.to_string())?;
                if n > buf.len() {
                    return Err("a field longer than its message".into());
                }
                let (bytes, rest) = buf.split_at(n);
                buf = rest;
                Field::Bytes(bytes)
            }
            other => return Err(format!("wire type {other} unexpected")),
        };
        out.push((key >> 3, field));
    }
    Ok(out)
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("a varint cut short")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint over 10 bytes".into())
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn bytes_field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    put_varint(number << 3 | 2, out);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 2);
    put_varint(message.len() as u64, &mut out);
    out.extend_from_slice(message);
    out
}
