//! The event loop's DHT side: publishing our name record, checking the
//! records peers ask us to store, and following name lookups.

use libp2p::kad::{self, store::RecordStore, GetRecordOk, QueryId, Quorum};
use libp2p::PeerId;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{EventLoop, REPUBLISH};
use crate::net::dht::{self, name_key};
use crate::net::record::NameRecord;

impl EventLoop {
    /// Put our signed record into the DHT.
    pub(super) fn publish(&mut self) {
        let record = self.shared.our_record();
        let kad_record = kad::Record::new(name_key(&record.name), record.to_bytes());
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .put_record(kad_record, Quorum::One)
        {
            warn!("cannot store our name record: {e}");
        }
        self.publish_at = Some(Instant::now() + REPUBLISH);
    }

    /// A peer asks us to store a record: keep it only if it is a valid
    /// name record that does not take a name from its holder.
    pub(super) fn on_put(&mut self, source: PeerId, record: kad::Record) {
        let refused = if !self.puts.allow(source, Instant::now().into_std()) {
            Err(dht::Refusal::RateLimited)
        } else {
            let kad = &mut self.swarm.behaviour_mut().kad;
            let stored = kad.store_mut().get(&record.key).map(|r| r.into_owned());
            dht::check(&record, stored.as_ref(), &self.shared.book).map(|_| ())
        };
        match refused {
            Ok(()) => match self.swarm.behaviour_mut().kad.store_mut().put(record) {
                Ok(()) => {
                    if let Some(services) = self.shared.services.upgrade() {
                        crate::metrics::NetCounters::count(&services.kernel.metrics.net.dht_stored);
                    }
                }
                Err(e) => debug!(%source, "DHT store full: {e}"),
            },
            Err(why) => {
                debug!(%source, %why, "DHT record refused");
                if let Some(services) = self.shared.services.upgrade() {
                    crate::metrics::NetCounters::count(&services.kernel.metrics.net.dht_refused);
                }
            }
        }
    }

    /// A DHT lookup found a record, or ended. Every record found is
    /// checked; one newer than what we dialed is bound and dialed (the
    /// lookup may answer from our own store first, then from peers holding
    /// a newer record).
    pub(super) fn on_lookup(&mut self, id: QueryId, result: kad::GetRecordResult, last: bool) {
        let Some(name) = self.lookups.get(&id).cloned() else {
            return;
        };
        if last {
            self.lookups.remove(&id);
            if let Some(pending) = self.waiting.get_mut(&name) {
                pending.looking_up = false;
            }
        }
        match result {
            Ok(GetRecordOk::FoundRecord(found)) => self.found(&name, &found.record.value),
            Ok(_) => {}
            Err(e) => debug!(name, "name lookup: {e}"),
        }
        if last {
            self.settle(&name);
        }
    }

    pub(super) fn found(&mut self, name: &str, bytes: &[u8]) {
        let record = match NameRecord::from_bytes(bytes) {
            Ok(record) if record.name == name => record,
            Ok(_) => return debug!(name, "the DHT returned a record for another name"),
            Err(e) => return debug!(name, "the DHT returned a bad record: {e}"),
        };
        if let Err(e) = record.verify() {
            return debug!(name, "the DHT returned a bad record: {e}");
        }
        if let Err(refused) = self.shared.book.bind(&record) {
            if let Some(pending) = self.waiting.get_mut(name) {
                pending.failed = Some(refused.to_string());
            }
            return;
        }
        let newer = self
            .waiting
            .get(name)
            .is_some_and(|p| p.dialed.is_none_or(|seq| seq < record.seq));
        if newer && !self.shared.links.is_connected(name) {
            debug!(
                name,
                seq = record.seq,
                "dialing the addresses of a newer record"
            );
            self.dial_record(name, &record);
        }
    }
}
