//! Node configuration. Built by the binary from its command line, or by
//! tests and `kit` directly; the library never reads the command line.
//!
//! The bottom floor of the crate: plain data that imports nothing from
//! the crate (`http.rs` and `net.rs` hold those services' settings).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

mod http;
mod net;

pub use http::{HttpConfig, Password, WS_CLIENT_BUFFER_BYTES};
pub use net::{NetConfig, RelayLimits};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory holding the node's keys, secret, packages and state.
    pub home: PathBuf,
    /// The node's name, such as `alice.os`.
    pub name: String,
    /// HTTP port; 0 picks a free one (written to `<home>/http.port`).
    pub http_port: u16,
    /// Address the HTTP server binds. Loopback by default: the admin API
    /// refuses non-loopback clients in any case.
    pub http_bind: IpAddr,
    pub limits: Limits,
    pub restart: RestartPolicy,
    /// Write `$HOME/.hearth/run/<port>` so `kit` can find this node.
    pub register_run_file: bool,
    /// Browser UIs, process bindings, WebSockets and login.
    pub http: HttpConfig,
    /// Peer-to-peer transport and discovery.
    pub net: NetConfig,
}

impl NodeConfig {
    pub fn new(home: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Self {
            home: home.into(),
            name: name.into(),
            http_port: 8080,
            http_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            limits: Limits::default(),
            restart: RestartPolicy::default(),
            register_run_file: true,
            http: HttpConfig::default(),
            net: NetConfig::default(),
        }
    }
}

/// Per-process and per-message limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest body + metadata + blob of one message.
    pub max_message_bytes: usize,
    /// Requests queued in one mailbox before senders get `mailbox-full`.
    pub mailbox_requests: usize,
    /// Bytes (payloads of requests, responses and failures) queued in one
    /// mailbox before senders get `mailbox-full`. One message always fits
    /// into an empty mailbox.
    pub mailbox_bytes: usize,
    /// Longest timeout a request from another node may ask for; longer
    /// ones are clamped, so a peer cannot make an owed answer live forever.
    pub max_remote_timeout: Duration,
    /// Requests a process may have awaiting a response at once.
    pub max_pending_asks: usize,
    /// Largest linear memory of one process; at most
    /// [`MEMORY_RESERVATION`], the size of an instance slot.
    pub max_memory_bytes: usize,
    /// Longest a single `init` or `handle` call may compute before it is
    /// interrupted (epoch interruption) and the process is stopped. Counted
    /// in epoch ticks the guest was running through, so time spent waiting
    /// for a worker thread or for a host call (a state commit) costs at most
    /// one tick per wait: a loaded machine does not kill healthy guests.
    pub max_call_time: Duration,
    /// Timeout given to injected requests that name none.
    pub default_inject_timeout: Duration,
    /// Largest wasm component a package holds or a process spawns; read
    /// and compiled only below this, so a huge or endless file (a device,
    /// a FIFO) cannot exhaust memory.
    pub max_component_bytes: usize,
    /// Processes (guest and native) one node runs at once; past this an
    /// install or spawn gets a typed `node-full` error. Every instance
    /// takes a few memory mappings, and a process that runs out of them
    /// aborts: the default keeps the node inside the machine's
    /// `vm.max_map_count` (see [`max_processes_for_this_machine`]).
    pub max_processes: usize,
}

/// Memory mappings one running wasm instance takes: its fiber stack and
/// guard page (two, mapped for every pool slot when the engine is made) and
/// its linear memory split around the copy-on-write image; rounded up
/// from the 5-6 measured (`/proc/<pid>/maps`, 1,000 idle echo processes).
const MAPPINGS_PER_INSTANCE: usize = 8;
/// Mappings kept for everything else the node maps: code, thread stacks,
/// sled, sockets and the allocator's arenas.
const RESERVED_MAPPINGS: usize = 8 * 1024;
/// Address space reserved for one instance's linear memory, which is the
/// most it can grow to: 256 MiB, the default `Limits::max_memory_bytes`.
/// Below 4 GiB, so compiled guests carry explicit bounds checks; in
/// exchange the address space holds about 470,000 of them, not 30,000.
pub const MEMORY_RESERVATION: u64 = 256 << 20;
/// The guard region after each linear memory (lets small constant offsets
/// skip part of a bounds check).
pub const MEMORY_GUARD: u64 = 2 << 20;
/// Address space of one instance's fiber stack in the pool (wasmtime's
/// default 2 MiB async stack and its guard page).
const STACK_RESERVATION: u64 = (2 << 20) + 4096;
/// User address space of one OS process on x86-64 Linux (47 bits).
const USER_ADDRESS_SPACE: u64 = 1 << 47;
/// Instances whose reservations fit in 15/16 of the address space (the
/// rest is the node's heap, code and thread stacks): about 470,000.
const ADDRESS_SPACE_CEILING: u64 =
    USER_ADDRESS_SPACE / 16 * 15 / (MEMORY_RESERVATION + MEMORY_GUARD + STACK_RESERVATION);
/// The most processes a node runs, whatever `vm.max_map_count` says (some
/// distributions set it near 2^31): 131,072, whose instance pool reserves
/// about a quarter of the address space (33 TiB). Below
/// `ADDRESS_SPACE_CEILING`, so the pool always fits.
pub const MAX_PROCESSES_CEILING: usize = if ADDRESS_SPACE_CEILING < (1 << 17) {
    ADDRESS_SPACE_CEILING as usize
} else {
    1 << 17
};

/// How many processes fit under this machine's `vm.max_map_count`:
/// `(max_map_count - RESERVED_MAPPINGS) / MAPPINGS_PER_INSTANCE`, at least
/// 64 and at most `MAX_PROCESSES_CEILING`. The instance pool (`runtime.rs`)
/// has this many slots.
/// Raising the sysctl raises it up to that ceiling.
pub fn max_processes_for_this_machine() -> usize {
    let map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    match map_count {
        Some(n) => (n.saturating_sub(RESERVED_MAPPINGS) / MAPPINGS_PER_INSTANCE)
            .clamp(64, MAX_PROCESSES_CEILING),
        None => MAX_PROCESSES_CEILING,
    }
}

/// The `vm.max_map_count` under which `processes` processes fit (the
/// inverse of [`max_processes_for_this_machine`]), for messages that tell
/// an operator what to raise it to.
pub fn max_map_count_for(processes: usize) -> usize {
    processes
        .saturating_mul(MAPPINGS_PER_INSTANCE)
        .saturating_add(RESERVED_MAPPINGS)
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            mailbox_requests: 4096,
            mailbox_bytes: 64 * 1024 * 1024,
            max_remote_timeout: Duration::from_secs(300),
            max_pending_asks: 16 * 1024,
            max_memory_bytes: MEMORY_RESERVATION as usize,
            max_call_time: Duration::from_secs(5),
            default_inject_timeout: Duration::from_secs(15),
            // Real apps compile to 1-10 MiB; 64 MiB leaves room for large
            // ones while bounding what one read may allocate.
            max_component_bytes: 64 * 1024 * 1024,
            max_processes: max_processes_for_this_machine(),
        }
    }
}

/// Backoff for processes whose `on_exit` is `Restart`: the n-th consecutive
/// restart waits `base * 2^(n-1)`, capped at `max`; the count resets once
/// an incarnation has stayed up for `stable_after`.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    pub base: Duration,
    pub max: Duration,
    pub stable_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            max: Duration::from_secs(60),
            stable_after: Duration::from_secs(30),
        }
    }
}

impl RestartPolicy {
    /// Delay before the `attempt`-th consecutive restart (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RestartPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            stable_after: Duration::from_secs(10),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(5), Duration::from_secs(1));
        assert_eq!(p.backoff(40), Duration::from_secs(1));
    }
}
