//! The host side of rooms: every action on a room we host is checked here
//! (membership, roles, content rules, rate limit), given the next event
//! number, stored, then published to the room's live stream and applied
//! to our own copy, one room at a time (a [`turns`] turn per room), so
//! the stream carries events in `ev` order without holes.
//!
//! `commit` is the ground the others stand on (room lookups, role checks,
//! the numbered, stored, published event); `membership`, `messages`,
//! `moderate`, `presence` and `history` are the actions, none importing
//! another.

mod commit;
mod history;
mod membership;
mod messages;
mod moderate;
mod presence;

pub use history::{recover, sync, SYNC_PAGE};
pub use membership::{admits, create, join, leave, public};
pub use messages::{change, import, send, Change};
pub use moderate::{moderate, Moderation};
pub use presence::{expire_presence, presence, typing};
