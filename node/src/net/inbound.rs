//! Frames from a peer whose `Hello` verified: requests, responses and
//! failures, each checked against what that peer may say.
//!
//! **Invariant:** answers (responses, `Failed`) are delivered only for
//! requests awaited from that peer, to the process that asked; anything
//! else is dropped and counted. Requests get a fresh local id (`owed`) and a
//! clamped timeout, and must name their own node as the asker.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::wire::Frame;
use super::Shared;
use crate::types::{Address, KernelMessage, Message, SendError, SendErrorKind};

/// Longest error detail kept from a peer's `Failed` frame.
const MAX_FAILURE_DETAIL: usize = 1024;

/// Handle one frame from `name`; false ends the stream.
pub(super) fn on_frame(shared: &Shared, name: &str, frame: Frame) -> bool {
    match frame {
        Frame::Deliver(km) => {
            if *km.source.node != *name {
                warn!(%name, source = %km.source, "peer sent a message in another node's name; closed");
                return false;
            }
            if km.is_request() {
                on_request(shared, name, km)
            } else {
                on_response(shared, name, km);
                true
            }
        }
        Frame::Failed { id, rsvp, error } => {
            on_failed(shared, name, id, rsvp, error);
            true
        }
        Frame::Hello(_) => {
            warn!(%name, "second hello on a stream; closed");
            false
        }
        // The reader ends the stream at `Moved` before it gets here.
        Frame::Moved => false,
    }
}

/// A request from `name`: delivered under a fresh local id, its timeout
/// clamped; a failure goes back to the peer under the peer's own id.
fn on_request(shared: &Shared, name: &str, mut km: KernelMessage) -> bool {
    let Some(services) = shared.services.upgrade() else {
        return false;
    };
    let kernel = &services.kernel;
    if km.rsvp.as_ref().is_some_and(|rsvp| *rsvp.node != *name) {
        warn!(%name, "peer asked for answers to go to another node; closed");
        return false;
    }
    let remote_id = km.id;
    km.id = kernel.next_id();
    let limit = kernel.limits().max_remote_timeout;
    let mut owed = false;
    if let (Message::Request(request), Some(rsvp)) = (&mut km.message, &km.rsvp) {
        if let Some(ms) = request.expects_response.as_mut() {
            *ms = (*ms).min(limit.as_millis() as u64);
            let deadline = Instant::now() + Duration::from_millis(*ms);
            owed = shared.owed.insert(km.id, remote_id, rsvp.clone(), deadline);
            if !owed {
                let error = SendError::new(
                    SendErrorKind::MailboxFull,
                    &km.target,
                    "this node already owes your node too many answers; retry later",
                );
                return_failure(shared, name, remote_id, rsvp.clone(), error);
                return true;
            }
        }
    }
    let (local_id, rsvp) = (km.id, km.rsvp.clone());
    if let Err(error) = kernel.deliver_from_network(km) {
        if owed {
            shared.owed.take(local_id);
        }
        match rsvp {
            Some(rsvp) => return_failure(shared, name, remote_id, rsvp, error),
            None => debug!(%name, %error, "undeliverable message from peer"),
        }
    }
    true
}

fn return_failure(shared: &Shared, name: &str, id: u64, rsvp: Address, error: SendError) {
    if shared
        .send_frame(name, Frame::Failed { id, rsvp, error }, None)
        .is_err()
    {
        debug!(%name, id, "could not return a failure to the peer");
    }
}

/// A response from `name`: delivered only if it answers a request awaited
/// from `name`, to the process that asked.
fn on_response(shared: &Shared, name: &str, km: KernelMessage) {
    match shared.links.answered(name, km.id, &km.target) {
        Some(_) => {
            let Some(services) = shared.services.upgrade() else {
                return;
            };
            if let Err(error) = services.kernel.deliver_from_network(km) {
                debug!(%name, %error, "response from peer not delivered");
            }
        }
        _ => {
            shared.count(|net| &net.unsolicited_answers);
            debug!(%name, id = km.id, target = %km.target, "response for no request awaited from this peer; dropped");
        }
    }
}

/// A `Failed` frame from `name`: the same rule as responses. The peer's
/// detail is cut short, and the target named is the one we sent to.
fn on_failed(shared: &Shared, name: &str, id: u64, rsvp: Address, mut error: SendError) {
    let awaited = match shared.links.answered(name, id, &rsvp) {
        Some(awaited) => awaited,
        None => {
            shared.count(|net| &net.unsolicited_answers);
            return debug!(%name, id, "failure for no request awaited from this peer; dropped");
        }
    };
    let Some(services) = shared.services.upgrade() else {
        return;
    };
    if error.detail.len() > MAX_FAILURE_DETAIL {
        let mut cut = MAX_FAILURE_DETAIL;
        while !error.detail.is_char_boundary(cut) {
            cut -= 1;
        }
        error.detail.truncate(cut);
    }
    error.target = awaited.target;
    services.kernel.fail(&awaited.rsvp, id, error);
}
