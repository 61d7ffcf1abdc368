//! Login throttling. Argon2 is costly on purpose, so password checks run
//! at most [`MAX_CONCURRENT_CHECKS`] at once, and a client address that
//! gets the password wrong [`MAX_FAILURES`] times within
//! [`FAILURE_WINDOW`] is refused without a check until the window ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Password checks running at once (each is one blocking Argon2 hash).
pub const MAX_CONCURRENT_CHECKS: usize = 2;
/// How long a login waits for a check slot before it is refused as busy.
pub const CHECK_QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Wrong passwords from one address before it is locked out.
pub const MAX_FAILURES: u32 = 5;
/// The window the failures are counted in, and the lockout's length.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; past it, expired entries are dropped and new
/// addresses go untracked (the check cap still bounds their rate).
const MAX_TRACKED: usize = 4096;

/// Why a login was refused before its password was checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Too many wrong passwords from this address: retry after this long.
    LockedOut(Duration),
    /// Every check slot stayed busy for [`CHECK_QUEUE_WAIT`].
    Busy,
}

pub struct LoginThrottle {
    checks: Arc<Semaphore>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

struct Failures {
    count: u32,
    /// Checks of this address running now: each may still fail, so they
    /// count against the lockout until they end.
    in_flight: u32,
    since: Instant,
}

impl Failures {
    fn fresh() -> Self {
        Self {
            count: 0,
            in_flight: 0,
            since: Instant::now(),
        }
    }

    fn expired(&self) -> bool {
        self.since.elapsed() >= FAILURE_WINDOW
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            checks: Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS)),
            failures: Mutex::default(),
        }
    }
}

/// One admitted password check: holds its check slot and its place in
/// the address's count until it is reported or dropped.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    /// `None` when the address went untracked (table full).
    key: Option<IpAddr>,
    _slot: OwnedSemaphorePermit,
}

impl Attempt<'_> {
    /// A wrong password: counted against the address.
    pub fn failed(self) {
        let mut map = self.throttle.lock();
        if let Some(entry) = self.key.and_then(|k| map.get_mut(&k)) {
            if entry.expired() {
                let in_flight = entry.in_flight;
                *entry = Failures::fresh();
                entry.in_flight = in_flight;
            }
            entry.count = entry.count.saturating_add(1);
        }
    }

    /// The right password: the address starts afresh.
    pub fn succeeded(self) {
        let mut map = self.throttle.lock();
        if let Some(entry) = self.key.and_then(|k| map.get_mut(&k)) {
            entry.count = 0;
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut map = self.throttle.lock();
        if let Some(entry) = self.key.and_then(|k| map.get_mut(&k)) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if entry.count == 0 && entry.in_flight == 0 {
                if let Some(key) = self.key {
                    map.remove(&key);
                }
            }
        }
    }
}

impl LoginThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A check of a password from `ip`, unless every slot stays busy or the
    /// address is locked out. The lockout is decided after the slot is
    /// taken, counting the checks of the address still running, so
    /// concurrent guesses never get past it.
    pub async fn admit(&self, ip: IpAddr) -> Result<Attempt<'_>, Refusal> {
        let slot = tokio::time::timeout(CHECK_QUEUE_WAIT, self.checks.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Refusal::Busy)?;
        let key = client(ip);
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            map.retain(|_, f| !f.expired() || f.in_flight > 0);
        }
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            // Untracked: the check cap still bounds this address's rate.
            drop(map);
            return Ok(Attempt {
                throttle: self,
                key: None,
                _slot: slot,
            });
        }
        let entry = map.entry(key).or_insert_with(Failures::fresh);
        if entry.expired() && entry.in_flight == 0 {
            *entry = Failures::fresh();
        }
        let age = entry.since.elapsed();
        if entry.count.saturating_add(entry.in_flight) >= MAX_FAILURES {
            let wait = FAILURE_WINDOW
                .saturating_sub(age)
                .max(Duration::from_secs(1));
            return Err(Refusal::LockedOut(wait));
        }
        entry.in_flight += 1;
        drop(map);
        Ok(Attempt {
            throttle: self,
            key: Some(key),
            _slot: slot,
        })
    }
}

/// The unit one client is counted by: its IPv4 address, or its IPv6 /64
/// (one host usually holds a whole /64).
fn client(ip: IpAddr) -> IpAddr {
    match super::origin::normalize(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_out_after_repeated_failures_and_success_resets() {
        let t = LoginThrottle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..MAX_FAILURES - 1 {
            t.admit(ip).await.unwrap().failed();
        }
        t.admit(ip).await.unwrap().succeeded();
        for _ in 0..MAX_FAILURES {
            t.admit(ip).await.unwrap().failed();
        }
        assert!(matches!(t.admit(ip).await, Err(Refusal::LockedOut(w)) if w <= FAILURE_WINDOW));
        assert!(t.admit(other).await.is_ok(), "others are not affected");
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client(a), client(b));
        assert_ne!(client(a), client(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[tokio::test]
    async fn checks_in_flight_count_against_the_lockout() {
        let t = LoginThrottle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..MAX_FAILURES - 1 {
            t.admit(ip).await.unwrap().failed();
        }
        // One guess left: the first admitted check takes it, a concurrent
        // one is refused although a slot is free.
        let last = t.admit(ip).await.unwrap();
        assert!(matches!(t.admit(ip).await, Err(Refusal::LockedOut(_))));
        last.failed();
        assert!(matches!(t.admit(ip).await, Err(Refusal::LockedOut(_))));
        // A mapped IPv4 peer is the same client.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(matches!(t.admit(mapped).await, Err(Refusal::LockedOut(_))));
    }

    #[tokio::test]
    async fn check_slots_are_capped() {
        let t = LoginThrottle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let held: Vec<_> =
            futures::future::join_all((0..MAX_CONCURRENT_CHECKS).map(|_| t.admit(ip)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert!(matches!(t.admit(ip).await, Err(Refusal::Busy)));
        drop(held);
        assert!(t.admit(ip).await.is_ok());
    }
}
