//! This process's persisted state, as JSON.
//!
//! The node keeps one byte string per process; it survives restarts and is
//! durable when [`set_state`] returns.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::hearth::process::kernel;

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The stored bytes are not the JSON of the requested type.
    #[error("stored state does not decode: {0}")]
    Decode(serde_json::Error),
    /// The value could not be serialized.
    #[error("state does not encode: {0}")]
    Encode(serde_json::Error),
    /// The node could not store or clear the state.
    #[error("node state store failed: {0}")]
    Node(String),
}

/// The saved state, or `None` if nothing was saved.
pub fn get_state<T: DeserializeOwned>() -> Result<Option<T>, StateError> {
    match get_state_bytes() {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(StateError::Decode),
        None => Ok(None),
    }
}

/// Saves `value` as the state; durable when it returns.
pub fn set_state<T: Serialize + ?Sized>(value: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec(value).map_err(StateError::Encode)?;
    set_state_bytes(&bytes)
}

/// Removes the saved state.
pub fn clear_state() -> Result<(), StateError> {
    kernel::clear_state().map_err(StateError::Node)
}

/// The saved state as raw bytes.
pub fn get_state_bytes() -> Option<Vec<u8>> {
    kernel::get_state()
}

/// Saves raw bytes as the state.
pub fn set_state_bytes(bytes: &[u8]) -> Result<(), StateError> {
    kernel::set_state(bytes).map_err(StateError::Node)
}
