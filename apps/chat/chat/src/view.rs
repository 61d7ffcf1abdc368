//! Our pages' live room `view`: every change they show, published by this
//! process to its node's rooms hub, watched by pages with `/hearth.js`.

use hearth_sdk::{log, rooms};

use crate::types::ViewEvent;

/// The name of the room our pages watch.
pub const VIEW_ROOM: &str = "view";

/// Publishes one change to our pages (fire-and-forget; a page that missed
/// it reloads through the HTTP methods after a gap).
pub fn emit(event: &ViewEvent) {
    if let Err(error) = rooms::publish(VIEW_ROOM, event) {
        log::warn!("view event not published: {error}");
    }
}
