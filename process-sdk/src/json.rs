//! JSON helpers: bodies and state are JSON by convention.
//!
//! `serde_json`'s [`json!`] macro and [`Value`] are re-exported so a process
//! needs no direct dependency on `serde_json`.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use serde_json::{json, Error, Value};

/// Serializes `value` to JSON bytes.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value)
}

/// Parses JSON bytes.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes)
}

/// Parses JSON bytes into a [`Value`]; bytes that are not JSON become a
/// string of their (lossy) UTF-8 text, so any body can be shown.
pub fn to_value_lossy(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_value_keeps_json_and_wraps_text() {
        assert_eq!(to_value_lossy(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(to_value_lossy(b"plain"), json!("plain"));
    }
}
