//! Whether peers can dial us: what AutoNAT v2 found (a peer dials one of
//! our candidate addresses back), the circuit addresses our relays hold
//! for us, and how each connected peer is reached (direct or relayed, TCP
//! or QUIC).

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

use super::filter::is_relayed;
use crate::api::{Reachability, RelayInfo};

/// Addresses of each kind kept at most (a peer cannot grow this list:
/// entries come from our own listeners and AutoNAT confirmations).
const MAX_ADDRS: usize = 16;

#[derive(Default)]
pub struct Reach {
    /// Confirmed by a dial-back; never a relay circuit.
    confirmed: Vec<Multiaddr>,
    /// Our circuit addresses on relays.
    circuits: Vec<Multiaddr>,
    tests_ok: u64,
    tests_failed: u64,
    /// A peer saw us at an IP that is none of ours: we are behind a NAT.
    mapped: bool,
    pub relays: Vec<RelayInfo>,
    pub relays_lost: u64,
    pub serving_relay: bool,
}

impl Reach {
    pub fn confirmed(&mut self, addr: &Multiaddr) {
        if !is_relayed(addr) && !self.confirmed.contains(addr) && self.confirmed.len() < MAX_ADDRS {
            self.confirmed.push(addr.clone());
        }
    }

    pub fn expired(&mut self, addr: &Multiaddr) {
        self.confirmed.retain(|a| a != addr);
        self.circuits.retain(|a| a != addr);
    }

    pub fn circuit(&mut self, addr: &Multiaddr) {
        if !self.circuits.contains(addr) && self.circuits.len() < MAX_ADDRS {
            self.circuits.push(addr.clone());
        }
    }

    pub fn tested(&mut self, ok: bool) {
        if ok {
            self.tests_ok += 1;
        } else {
            self.tests_failed += 1;
        }
    }

    /// A peer observed us at `observed`; `ours` are our listen addresses.
    /// An IP that is none of ours means a NAT rewrote it.
    pub fn observed(&mut self, observed: &Multiaddr, ours: &[Multiaddr]) {
        let Some(ip) = ip_of(observed) else { return };
        if !is_relayed(observed) && !ours.iter().any(|a| ip_of(a) == Some(ip)) {
            self.mapped = true;
        }
    }

    /// `public` once any address is confirmed (by a dial-back, or given
    /// with `--external-addr`); `private` once dial-backs failed or a peer
    /// saw us behind a NAT, and none succeeded; else `unknown`.
    ///
    /// The NAT evidence matters: libp2p's AutoNAT v2 reports nothing when
    /// a NAT silently drops the dial-back (the server's request times
    /// out first), which is what home routers do.
    pub fn status(&self) -> &'static str {
        if !self.confirmed.is_empty() {
            "public"
        } else if (self.tests_failed > 0 || self.mapped) && self.tests_ok == 0 {
            "private"
        } else {
            "unknown"
        }
    }

    pub fn circuits(&self) -> &[Multiaddr] {
        &self.circuits
    }

    pub fn confirmed_addrs(&self) -> &[Multiaddr] {
        &self.confirmed
    }

    pub fn to_api(&self) -> Reachability {
        Reachability {
            status: self.status().to_string(),
            confirmed: self.confirmed.iter().map(ToString::to_string).collect(),
            circuits: self.circuits.iter().map(ToString::to_string).collect(),
            relays: self.relays.clone(),
            relays_lost: self.relays_lost,
            serving_relay: self.serving_relay,
        }
    }
}

fn ip_of(addr: &Multiaddr) -> Option<std::net::IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    })
}

/// `tcp` or `quic`: the transport of an address (of its first hop for a
/// relayed one).
pub fn transport(addr: &Multiaddr) -> &'static str {
    for p in addr.iter() {
        match p {
            Protocol::QuicV1 | Protocol::Quic => return "quic",
            Protocol::Tcp(_) => return "tcp",
            _ => {}
        }
    }
    "other"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_dial_backs() {
        let mut r = Reach::default();
        assert_eq!(r.status(), "unknown");
        r.tested(false);
        assert_eq!(r.status(), "private");
        let circuit: Multiaddr = "/ip4/1.2.3.4/tcp/1/p2p-circuit".parse().unwrap();
        r.confirmed(&circuit);
        assert_eq!(r.status(), "private", "a relay circuit is not reachability");
        let direct: Multiaddr = "/ip4/1.2.3.4/udp/1/quic-v1".parse().unwrap();
        r.confirmed(&direct);
        assert_eq!(r.status(), "public");
        assert_eq!(transport(&direct), "quic");
        assert_eq!(transport(&circuit), "tcp");
        r.expired(&direct);
        assert_eq!(r.status(), "private");
    }

    #[test]
    fn an_observed_ip_that_is_not_ours_means_a_nat() {
        let ours: Vec<Multiaddr> = vec!["/ip4/192.168.1.2/tcp/4001".parse().unwrap()];
        let mut r = Reach::default();
        r.observed(&"/ip4/192.168.1.2/tcp/4001".parse().unwrap(), &ours);
        assert_eq!(r.status(), "unknown");
        r.observed(&"/ip4/10.200.3.2/tcp/4001".parse().unwrap(), &ours);
        assert_eq!(r.status(), "private");
    }
}
