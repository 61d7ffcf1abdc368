//! Small pure helpers: time, names and addresses, content rules, mentions,
//! base64.

use crate::error::{ChatError, MAX_TEXT_CHARS};
use crate::types::Profile;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The room id of `room-id@host` (the whole text if there is no `@`).
pub fn room_id(address: &str) -> &str {
    address.split_once('@').map_or(address, |(id, _)| id)
}

/// `(room id, host node)` of a valid room address.
pub fn parse_address(address: &str) -> Result<(&str, &str), ChatError> {
    let bad = || {
        ChatError::Invalid(format!(
            "`{address}` is not a room address (room-id@host-node)"
        ))
    };
    let (id, host) = address.split_once('@').ok_or_else(bad)?;
    if !valid_id(id) || !valid_node(host) {
        return Err(bad());
    }
    Ok((id, host))
}

/// Room ids: 1 to 64 of `[a-z0-9.-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Node names: 1 to 64 of `[a-z0-9.-]`.
pub fn valid_node(node: &str) -> bool {
    valid_id(node)
}

pub fn check_node(node: &str) -> Result<(), ChatError> {
    if valid_node(node) {
        Ok(())
    } else {
        Err(ChatError::Invalid(format!("`{node}` is not a node name")))
    }
}

/// A slug of a room name for its id: lower case, `-` between words.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "room".into()
    } else {
        out
    }
}

pub fn check_room_name(name: &str) -> Result<String, ChatError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 64 || name.chars().any(char::is_control) {
        return Err(ChatError::Invalid(
            "a room name has 1 to 64 characters, no control characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// The content rules of a message: not empty (unless it carries a file),
/// at most [`MAX_TEXT_CHARS`] characters.
pub fn check_text(text: &str, has_file: bool) -> Result<(), ChatError> {
    if text.trim().is_empty() && !has_file {
        return Err(ChatError::Empty);
    }
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(ChatError::TooLong(n));
    }
    Ok(())
}

/// Members named as `@node` in `text`, once each, in order.
pub fn mentions<'a>(text: &str, members: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split('@').skip(1) {
        let name: String = word
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if members.clone().any(|m| m == name) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

pub fn default_profile(node: &str) -> Profile {
    const COLORS: [&str; 8] = [
        "#2563eb", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#0891b2", "#ca8a04", "#dc2626",
    ];
    let hash = node
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let name = node.split('.').next().unwrap_or(node);
    let mut display = name.to_string();
    if let Some(first) = display.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    Profile {
        node: node.to_string(),
        display_name: display,
        color: COLORS[hash as usize % COLORS.len()].to_string(),
    }
}

pub fn check_profile(display_name: &str, color: &str) -> Result<(), ChatError> {
    let n = display_name.trim().chars().count();
    if n == 0 || n > 40 || display_name.chars().any(char::is_control) {
        return Err(ChatError::Invalid(
            "a display name has 1 to 40 characters".into(),
        ));
    }
    let hex = color.strip_prefix('#').unwrap_or("");
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChatError::Invalid("a colour is #rrggbb".into()));
    }
    Ok(())
}

/// 16 random bytes as hex, for client and file ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The clock and a counter still keep ids apart on one node.
        let now = now_ms().to_le_bytes();
        bytes[..8].copy_from_slice(&now);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional, whitespace refused).
pub fn b64_decode(text: &str) -> Result<Vec<u8>, ChatError> {
    let bad = || ChatError::Invalid("`data` is not base64".into());
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(bad()),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64_decode(&b64_encode(&data)).unwrap(), data);
        }
        assert_eq!(b64_encode(b"hi!"), "aGkh");
        assert_eq!(b64_encode(b"h"), "aA==");
    }

    #[test]
    fn mentions_are_members_once() {
        let members = ["bob.os", "carol.os"];
        let found = mentions(
            "hi @bob.os and @carol.os. @bob.os @dave.os",
            members.iter().copied(),
        );
        assert_eq!(found, vec!["bob.os", "carol.os"]);
    }

    #[test]
    fn content_rules() {
        assert_eq!(check_text("  ", false), Err(ChatError::Empty));
        assert!(check_text("", true).is_ok());
        assert_eq!(
            check_text(&"x".repeat(4001), false),
            Err(ChatError::TooLong(4001))
        );
        assert!(check_text(&"é".repeat(4000), false).is_ok());
    }
}
