//! The hub's side of rooms on other nodes: joining a remote owner's hub,
//! serving other nodes' joins, relays arriving for local subscribers, and
//! the held request that turns a lost owner node into `offline`, then
//! rejoins.

use std::sync::Arc;

use tracing::debug;

use super::types::{RoomEvent, RoomsError, RoomsRequest, RoomsResponse};
use super::{
    Hub, HOLD_DEADLINE, HUB_TIMEOUT, LAG_RETRY, MAX_HOLDS_PER_NODE, MAX_JOINS_IN_FLIGHT_PER_NODE,
    MAX_SUBSCRIBERS_PER_NODE, REJOIN_FIRST, REJOIN_MAX,
};
use crate::types::{Address, ProcessId, SendErrorKind};

/// Requests of other nodes this hub serves for a while, bounded per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Pending {
    Join,
    Hold,
}

impl Pending {
    fn limit(self) -> usize {
        match self {
            Pending::Join => MAX_JOINS_IN_FLIGHT_PER_NODE,
            Pending::Hold => MAX_HOLDS_PER_NODE,
        }
    }
}

/// One request of another node being served; its place is freed on drop.
pub(super) struct PeerSlot {
    hub: Arc<Hub>,
    key: (Arc<str>, Pending),
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(n) = state.in_flight.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                state.in_flight.remove(&self.key);
            }
        }
    }
}

/// A lagging subscriber's rejoin task; its mark is cleared when it ends.
struct RejoinMark {
    hub: Arc<Hub>,
    key: (Address, String),
    pid: ProcessId,
    /// The task cleared its mark itself (a later task's must stay).
    cleared: bool,
}

impl Drop for RejoinMark {
    fn drop(&mut self) {
        if self.cleared {
            return;
        }
        if let Some(watch) = self.hub.lock().watched.get_mut(&self.key) {
            watch.rejoins.remove(&self.pid);
        }
    }
}

impl Hub {
    /// A place for one more `kind` request of `node`, or `Limit`.
    pub(super) fn take_slot(
        self: &Arc<Self>,
        node: &Arc<str>,
        kind: Pending,
    ) -> Result<PeerSlot, RoomsError> {
        let key = (node.clone(), kind);
        let mut state = self.lock();
        let n = state.in_flight.entry(key.clone()).or_default();
        if *n >= kind.limit() {
            return Err(RoomsError::Limit(format!(
                "{} {kind:?} requests in flight per node",
                kind.limit()
            )));
        }
        *n += 1;
        Ok(PeerSlot {
            hub: self.clone(),
            key,
        })
    }

    /// Ask the owner node's hub to let `subscriber` join.
    pub(super) async fn join_at(
        &self,
        owner: &Address,
        room: &str,
        subscriber: &Address,
        from: Option<u64>,
    ) -> Result<RoomsResponse, RoomsError> {
        let incarnation = self
            .lock()
            .watched
            .get(&(owner.clone(), room.to_string()))
            .and_then(|w| w.incarnation);
        let join = RoomsRequest::Join {
            owner: owner.process.to_string(),
            room: room.to_string(),
            subscriber: subscriber.to_string(),
            from,
            incarnation,
        };
        let body = serde_json::to_vec(&join).unwrap_or_default();
        let answer = self
            .ask(Self::hub_at(&owner.node), body, HUB_TIMEOUT)
            .await?;
        serde_json::from_value::<Result<RoomsResponse, RoomsError>>(answer).map_err(|e| {
            RoomsError::Unreachable(format!("the owner's hub answered nonsense: {e}"))
        })?
    }

    /// At the owner's hub: a subscriber on `node` joins.
    pub(super) async fn join_remote(
        &self,
        node: Arc<str>,
        owner: ProcessId,
        room: String,
        subscriber: Address,
        (from, incarnation): (Option<u64>, Option<u64>),
    ) -> Result<RoomsResponse, RoomsError> {
        let our = self
            .our()
            .ok_or_else(|| RoomsError::Unreachable("stopping".into()))?;
        let owner_addr = Address::new(our, owner.clone());
        let running = self
            .services
            .upgrade()
            .is_some_and(|s| s.kernel.is_running(&owner));
        if !running {
            return Err(RoomsError::Unreachable(format!("no process {owner_addr}")));
        }
        self.check_networking(&owner)
            .map_err(|_| RoomsError::Forbidden(format!("{owner} does not accept other nodes")))?;
        let snapshot = self.ask_owner(&owner_addr, &room, &subscriber).await?;
        let mut state = self.lock();
        let key = (owner.clone(), room.clone());
        let known = state
            .owned
            .get(&key)
            .and_then(|r| r.nodes.get(&node))
            .is_some_and(|subs| subs.contains(&subscriber.to_string()));
        let held: usize = state
            .owned
            .values()
            .filter_map(|r| r.nodes.get(&node))
            .map(|subs| subs.len())
            .sum();
        if !known && held >= MAX_SUBSCRIBERS_PER_NODE {
            return Err(RoomsError::Limit(format!(
                "{MAX_SUBSCRIBERS_PER_NODE} subscribers per node"
            )));
        }
        let room_state = self.admit(&mut state, &owner, &room)?;
        // A burst's live events go first, to the nodes that had joined.
        self.send_outbox(&owner_addr, &room, room_state);
        room_state
            .nodes
            .entry(node.clone())
            .or_default()
            .insert(subscriber.to_string());
        let next = room_state.live_next();
        let relay = RoomsRequest::Relay {
            owner: owner_addr.to_string(),
            room,
            to: Some(subscriber.to_string()),
            events: from
                .map(|f| room_state.replay_in(f, incarnation))
                .unwrap_or_default(),
            next,
            incarnation: room_state.incarnation,
        };
        self.tell_hub(&node, &relay).map_err(|k| {
            RoomsError::Unreachable(format!(
                "cannot reach the subscriber's node: {}",
                k.as_str()
            ))
        })?;
        Ok(RoomsResponse::Joined { next, snapshot })
    }

    /// At a subscribing hub: events of a watched room arrive.
    pub(super) fn on_relay(
        self: &Arc<Self>,
        owner: &Address,
        room: &str,
        to: Option<String>,
        events: Vec<RoomEvent>,
        (next, incarnation): (u64, u64),
    ) -> Result<(), RoomsError> {
        // Live sequence numbers start at 1: `next` 0 is a bad frame.
        let live_after = next
            .checked_sub(1)
            .ok_or_else(|| RoomsError::BadRequest("a relay's next is at least 1".into()))?;
        let mut state = self.lock();
        let Some(watch) = state.watched.get_mut(&(owner.clone(), room.to_string())) else {
            // Nobody here watches it (any more): dropped, and counted.
            self.count(|m| &m.rooms_refused);
            return Ok(());
        };
        watch.incarnation = Some(incarnation);
        let targets: Vec<(ProcessId, Option<u64>)> = match &to {
            Some(to) => match to.parse::<Address>() {
                Ok(a) if watch.subs.contains_key(&a.process) => {
                    let cursor = watch.resume.get(&a.process).copied();
                    vec![(a.process.clone(), cursor)]
                }
                _ => {
                    self.count(|m| &m.rooms_refused);
                    return Ok(());
                }
            },
            None => watch
                .subs
                .iter()
                .filter(|(_, c)| c.is_some())
                .map(|(p, c)| (p.clone(), *c))
                .collect(),
        };
        let mut rejoin = Vec::new();
        // Each event's body, made once for all the targets.
        // The last target takes the bodies themselves, not copies.
        let mut bodies: Vec<Option<Vec<u8>>> = vec![None; events.len()];
        let final_target = targets.len().saturating_sub(1);
        for (i, (pid, cursor)) in targets.into_iter().enumerate() {
            let mut last = cursor;
            let mut outcome = Ok(());
            if to.is_some() && watch.rejoining.remove(&pid) {
                outcome = self.deliver(&pid, owner, room, &RoomEvent::Online);
            }
            if let (Some(_), Some(&from), Ok(())) = (&to, watch.lagging.get(&pid), &outcome) {
                outcome = self.deliver(&pid, owner, room, &RoomEvent::Lagged { from });
                if outcome.is_ok() {
                    watch.lagging.remove(&pid);
                }
            }
            let sent = events.iter().zip(bodies.iter_mut());
            for (event, body) in sent.filter(|_| outcome.is_ok()) {
                if let RoomEvent::Event { seq, .. } = event {
                    match last {
                        Some(c) if *seq <= c => continue,
                        Some(c) if *seq > c.saturating_add(1) => {
                            outcome = Err(SendErrorKind::MailboxFull);
                            break;
                        }
                        _ => {}
                    }
                }
                let body = super::shared_body(body, i == final_target, || {
                    super::delivery_body(owner, room, event)
                });
                if let Err(kind) = self.deliver_body(&pid, body) {
                    outcome = Err(kind);
                    break;
                }
                match event {
                    RoomEvent::Event { seq, .. } => last = Some(*seq),
                    RoomEvent::Gap { next } => last = Some(next.saturating_sub(1)),
                    RoomEvent::Ended => last = None,
                    _ => {}
                }
            }
            match outcome {
                Ok(()) => {
                    let live = if to.is_some() { Some(live_after) } else { last };
                    watch.resume.remove(&pid);
                    watch.subs.insert(pid, live);
                }
                // Missed events (a full mailbox or a hole): tell it, and
                // rejoin from where it is.
                Err(SendErrorKind::MailboxFull) => {
                    let from = last.unwrap_or(0);
                    let first = from.saturating_add(1);
                    let told = watch.lagging.contains_key(&pid)
                        || self
                            .deliver(&pid, owner, room, &RoomEvent::Lagged { from: first })
                            .is_ok();
                    if !told {
                        watch.lagging.insert(pid.clone(), first);
                    }
                    watch.resume.insert(pid.clone(), from);
                    watch.subs.insert(pid.clone(), None);
                    // At most one rejoin task per subscriber: a lag while
                    // one is under way only asks it to go once more, and
                    // is counted (a hostile owner's flood of relays with
                    // holes costs one task, not one per frame).
                    match watch.rejoins.get_mut(&pid) {
                        Some(again) => {
                            *again = true;
                            self.count(|m| &m.rooms_refused);
                        }
                        None => {
                            watch.rejoins.insert(pid.clone(), false);
                            rejoin.push(pid);
                        }
                    }
                }
                Err(_) => {
                    watch.subs.remove(&pid);
                    let Some(our) = self.our() else { continue };
                    let leave = RoomsRequest::Leave {
                        owner: owner.process.to_string(),
                        room: room.to_string(),
                        subscriber: Address::new(our, pid).to_string(),
                    };
                    let _ = self.tell_hub(&owner.node, &leave);
                }
            }
        }
        drop(state);
        for pid in rejoin {
            self.spawn(
                self.clone()
                    .rejoin_lagging(owner.clone(), room.to_string(), pid),
            );
        }
        Ok(())
    }

    /// The one rejoin task of a lagging subscriber of a watched room:
    /// after [`LAG_RETRY`], rejoin from where it is, and again while lags
    /// came meanwhile; its mark in [`Watch::rejoins`] goes when it ends.
    ///
    /// [`Watch::rejoins`]: super::room::Watch::rejoins
    async fn rejoin_lagging(self: Arc<Self>, owner: Address, room: String, pid: ProcessId) {
        let key = (owner.clone(), room.clone());
        let mut mark = RejoinMark {
            hub: self.clone(),
            key: key.clone(),
            pid: pid.clone(),
            cleared: false,
        };
        let Some(our) = self.our() else { return };
        let subscriber = Address::new(our, pid.clone());
        loop {
            if self
                .until_closed(tokio::time::sleep(LAG_RETRY))
                .await
                .is_none()
            {
                return;
            }
            let from = {
                let mut state = self.lock();
                let Some(watch) = state.watched.get_mut(&key) else {
                    return;
                };
                if !watch.subs.contains_key(&pid) {
                    return;
                }
                if let Some(again) = watch.rejoins.get_mut(&pid) {
                    *again = false;
                }
                watch.resume.get(&pid).copied().unwrap_or(0)
            };
            let rejoin = self.join_at(&owner, &room, &subscriber, Some(from));
            match self.until_closed(rejoin).await {
                None => return,
                Some(Err(e)) => debug!(%owner, room, %e, "rejoin after a lag failed"),
                Some(Ok(_)) => {}
            }
            // Asked again meanwhile, or done: decided under the lock a
            // lag takes it under, so no lag falls between.
            let mut state = self.lock();
            let Some(watch) = state.watched.get_mut(&key) else {
                return;
            };
            if watch.rejoins.get(&pid) != Some(&true) {
                watch.rejoins.remove(&pid);
                mark.cleared = true;
                return;
            }
        }
    }

    /// Keep a request open at `node`'s hub while we watch rooms there;
    /// when it fails, the node is offline for every watch on it.
    pub(super) fn hold(self: &Arc<Self>, node: Arc<str>) {
        if !self.lock().held.insert(node.clone()) {
            return;
        }
        let hub = self.clone();
        tokio::spawn(async move {
            loop {
                let watching = hub.lock().watched.keys().any(|(o, _)| o.node == node);
                if !watching {
                    hub.lock().held.remove(&node);
                    return;
                }
                let body = serde_json::to_vec(&RoomsRequest::Hold).unwrap_or_default();
                let held = hub.ask(Self::hub_at(&node), body, HOLD_DEADLINE);
                match hub.until_closed(held).await {
                    None => return,
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break,
                }
            }
            hub.lock().held.remove(&node);
            let _ = hub.until_closed(hub.offline(node.clone())).await;
        });
    }

    /// `node` went away: tell its rooms' subscribers, then rejoin with
    /// backoff until it is back.
    pub(super) async fn offline(self: &Arc<Self>, node: Arc<str>) {
        self.count(|m| &m.rooms_offline);
        let mut cursors: Vec<(Address, String, ProcessId, Option<u64>)> = Vec::new();
        {
            let mut state = self.lock();
            for ((owner, room), watch) in state
                .watched
                .iter_mut()
                .filter(|((o, _), _)| o.node == node)
            {
                for (pid, cursor) in watch.subs.iter_mut() {
                    let _ = self.deliver(pid, owner, room, &RoomEvent::Offline);
                    cursors.push((owner.clone(), room.clone(), pid.clone(), *cursor));
                    watch.rejoining.insert(pid.clone());
                    *cursor = None;
                }
            }
        }
        let Some(our) = self.our() else { return };
        let mut wait = REJOIN_FIRST;
        while !cursors.is_empty() {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(REJOIN_MAX);
            let mut left = Vec::new();
            for (owner, room, pid, cursor) in cursors {
                let still = self
                    .lock()
                    .watched
                    .get(&(owner.clone(), room.clone()))
                    .is_some_and(|w| w.subs.contains_key(&pid));
                if !still {
                    continue;
                }
                let subscriber = Address::new(our.clone(), pid.clone());
                match self.join_at(&owner, &room, &subscriber, cursor).await {
                    // `online` goes out with the replay (`on_relay`).
                    Ok(_) => self.hold(owner.node.clone()),
                    Err(RoomsError::Unreachable(_)) => left.push((owner, room, pid, cursor)),
                    Err(e) => {
                        debug!(%owner, room, %e, "rejoin refused; subscription ended");
                        let _ = self.deliver(&pid, &owner, &room, &RoomEvent::Ended);
                    }
                }
            }
            cursors = left;
        }
    }
}
