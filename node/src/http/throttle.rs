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
    since: Instant,
}

impl Failures {
    fn fresh() -> Self {
        Self {
            count: 0,
            since: Instant::now(),
        }
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

impl LoginThrottle {
    /// A slot to check a password from `ip` in, unless it is locked out or
    /// every slot stays busy.
    pub async fn admit(&self, ip: IpAddr) -> Result<OwnedSemaphorePermit, Refusal> {
        if let Some(wait) = self.locked_for(client(ip)) {
            return Err(Refusal::LockedOut(wait));
        }
        tokio::time::timeout(CHECK_QUEUE_WAIT, self.checks.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Refusal::Busy)
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let key = client(ip);
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            map.retain(|_, f| f.since.elapsed() < FAILURE_WINDOW);
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = map.entry(key).or_insert_with(Failures::fresh);
        if entry.since.elapsed() >= FAILURE_WINDOW {
            *entry = Failures::fresh();
        }
        entry.count = entry.count.saturating_add(1);
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client(ip));
    }

    fn locked_for(&self, key: IpAddr) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(&key)?;
        let age = entry.since.elapsed();
        (entry.count >= MAX_FAILURES && age < FAILURE_WINDOW).then(|| FAILURE_WINDOW - age)
    }
}

/// The unit one client is counted by: its IPv4 address, or its IPv6 /64
/// (one host usually holds a whole /64).
fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
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
            assert!(t.admit(ip).await.is_ok());
            t.failed(ip);
        }
        t.succeeded(ip);
        for _ in 0..MAX_FAILURES {
            assert!(t.admit(ip).await.is_ok());
            t.failed(ip);
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
        assert_eq!(t.admit(ip).await.unwrap_err(), Refusal::Busy);
        drop(held);
        assert!(t.admit(ip).await.is_ok());
    }
}
