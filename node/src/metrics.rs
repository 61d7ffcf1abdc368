//! Counters of one node, rendered at `/metrics` in the Prometheus text
//! format. Everything is an atomic updated on the hot path with relaxed
//! ordering: a scrape sees each counter exactly, not a consistent cut.
//!
//! The kernel counts routed messages and errors by kind (`Kernel::route`,
//! `Kernel::fail`); the HTTP server counts requests, WebSocket traffic and
//! latencies. Gauges (processes, peers, open WebSockets) are read at scrape
//! time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::types::SendErrorKind;

/// Every `SendErrorKind`, in the order of [`Metrics::errors`].
pub const ERROR_KINDS: [SendErrorKind; 9] = [
    SendErrorKind::UnknownProcess,
    SendErrorKind::CapabilityMissing,
    SendErrorKind::PayloadTooLarge,
    SendErrorKind::MailboxFull,
    SendErrorKind::Timeout,
    SendErrorKind::Offline,
    SendErrorKind::ProcessExited,
    SendErrorKind::NoAsker,
    SendErrorKind::BadAddress,
];

fn kind_index(kind: SendErrorKind) -> usize {
    ERROR_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// A cumulative latency histogram.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        let _ = writeln!(out, "{name}_count{labels} {count}");
    }
}

/// HTTP answers counted by status class: 2xx, 3xx, 4xx, 5xx (1xx counts as 2xx).
#[derive(Default)]
pub struct Metrics {
    pub messages_routed: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
    pub http_responses: [AtomicU64; 4],
    /// Requests forwarded to a process binding, and their latency.
    pub http_process_latency: Histogram,
    /// Every HTTP request, and its latency.
    pub http_latency: Histogram,
    pub ws_opened: AtomicU64,
    pub ws_messages_in: AtomicU64,
    pub ws_messages_out: AtomicU64,
    /// Connections closed because their send buffer was full.
    pub ws_dropped_slow: AtomicU64,
    /// Time to hand one publish to every subscriber's buffer.
    pub ws_publish_latency: Histogram,
    /// What the network refused from peers.
    pub net: NetCounters,
    /// Room events relayed to subscribing nodes (one per node per event).
    pub rooms_relays: AtomicU64,
    /// Owner nodes a rooms hub found gone (each sends `offline`).
    pub rooms_offline: AtomicU64,
    /// Hub-to-hub room requests from peers refused or dropped.
    pub rooms_refused: AtomicU64,
}

/// Hostile or broken input from peers, refused and counted.
#[derive(Default)]
pub struct NetCounters {
    /// Responses and `Failed` frames for no request awaited from that peer.
    pub unsolicited_answers: AtomicU64,
    /// Streams closed for a bad frame, a missing hello or a limit.
    pub streams_refused: AtomicU64,
    /// Name records refused (bad signature, name taken, too many names).
    pub names_refused: AtomicU64,
    /// DHT records refused (invalid, squatting, over the rate limit).
    pub dht_refused: AtomicU64,
    /// DHT records from peers that passed every check and were stored.
    pub dht_stored: AtomicU64,
    /// DCUtR hole punches finished (either way), and those that gave a
    /// direct connection.
    pub hole_punch_attempts: AtomicU64,
    pub hole_punch_successes: AtomicU64,
    /// Message bytes we wrote on streams over relayed connections.
    pub relayed_bytes: AtomicU64,
    /// Reservations a relay granted us (renewals included), and relays
    /// whose reservation we lost.
    pub relay_reservations: AtomicU64,
    pub relays_lost: AtomicU64,
    /// Serving as a relay: circuits accepted, reservations refused and
    /// circuits refused.
    pub relay_circuits_served: AtomicU64,
    pub relay_reservations_refused: AtomicU64,
    pub relay_circuits_refused: AtomicU64,
}

impl NetCounters {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let rows = [
            (
                "hearth_net_unsolicited_answers_total",
                "Answers from peers for no request awaited from them; dropped.",
                &self.unsolicited_answers,
            ),
            (
                "hearth_net_streams_refused_total",
                "Inbound message streams closed for bad frames, a missing hello or a limit.",
                &self.streams_refused,
            ),
            (
                "hearth_net_names_refused_total",
                "Name records refused from peers.",
                &self.names_refused,
            ),
            (
                "hearth_net_dht_records_refused_total",
                "DHT records refused (invalid, taken name, rate limit).",
                &self.dht_refused,
            ),
            (
                "hearth_net_dht_records_stored_total",
                "DHT records from peers that passed every check and were stored.",
                &self.dht_stored,
            ),
            (
                "hearth_net_hole_punch_attempts_total",
                "DCUtR hole punches finished, successful or not.",
                &self.hole_punch_attempts,
            ),
            (
                "hearth_net_hole_punch_successes_total",
                "DCUtR hole punches that gave a direct connection.",
                &self.hole_punch_successes,
            ),
            (
                "hearth_net_relayed_bytes_total",
                "Message bytes written on streams over relayed connections.",
                &self.relayed_bytes,
            ),
            (
                "hearth_net_relay_reservations_total",
                "Reservations relays granted us, renewals included.",
                &self.relay_reservations,
            ),
            (
                "hearth_net_relays_lost_total",
                "Relays whose reservation we held and lost.",
                &self.relays_lost,
            ),
            (
                "hearth_net_relay_circuits_served_total",
                "Circuits this node accepted to relay (--relay).",
                &self.relay_circuits_served,
            ),
            (
                "hearth_net_relay_reservations_refused_total",
                "Reservation requests this node refused.",
                &self.relay_reservations_refused,
            ),
            (
                "hearth_net_relay_circuits_refused_total",
                "Circuit requests this node refused (a limit, or no reservation).",
                &self.relay_circuits_refused,
            ),
        ];
        for (name, help, value) in rows {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
    }
}

/// Values read at scrape time rather than counted.
pub struct Gauges {
    pub processes: usize,
    pub peers: usize,
    pub ws_open: usize,
}

impl Metrics {
    pub fn routed(&self) {
        self.messages_routed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, kind: SendErrorKind) {
        self.errors[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Count the outcome of one `Kernel::route`.
    pub fn route_result<T>(&self, result: &Result<T, crate::types::SendError>) {
        match result {
            Ok(_) => self.routed(),
            Err(e) => self.error(e.kind),
        }
    }

    pub fn errors(&self, kind: SendErrorKind) -> u64 {
        self.errors[kind_index(kind)].load(Ordering::Relaxed)
    }

    pub fn http_response(&self, status: u16, elapsed: Duration) {
        let class = match status {
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => 0,
        };
        self.http_responses[class].fetch_add(1, Ordering::Relaxed);
        self.http_latency.observe(elapsed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: usize| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut out,
            "hearth_messages_routed_total",
            "Messages queued by Kernel::route.",
            load(&self.messages_routed),
        );
        let _ = writeln!(out, "# HELP hearth_message_errors_total Send errors by kind (refused at route or failed later).\n# TYPE hearth_message_errors_total counter");
        for kind in ERROR_KINDS {
            let _ = writeln!(
                out,
                "hearth_message_errors_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                self.errors(kind)
            );
        }
        gauge(
            &mut out,
            "hearth_processes",
            "Registered processes and native endpoints.",
            gauges.processes,
        );
        gauge(
            &mut out,
            "hearth_peers",
            "Connected peer nodes.",
            gauges.peers,
        );
        let _ = writeln!(out, "# HELP hearth_http_responses_total HTTP responses by status class.\n# TYPE hearth_http_responses_total counter");
        for (class, n) in ["2xx", "3xx", "4xx", "5xx"]
            .iter()
            .zip(&self.http_responses)
        {
            let _ = writeln!(
                out,
                "hearth_http_responses_total{{class=\"{class}\"}} {}",
                load(n)
            );
        }
        let _ = writeln!(out, "# HELP hearth_http_request_seconds Latency of every HTTP request.\n# TYPE hearth_http_request_seconds histogram");
        self.http_latency
            .render(&mut out, "hearth_http_request_seconds", "");
        let _ = writeln!(out, "# HELP hearth_http_process_seconds Latency of HTTP requests answered by a process.\n# TYPE hearth_http_process_seconds histogram");
        self.http_process_latency
            .render(&mut out, "hearth_http_process_seconds", "");
        gauge(
            &mut out,
            "hearth_ws_connections",
            "Open WebSocket connections.",
            gauges.ws_open,
        );
        counter(
            &mut out,
            "hearth_ws_opened_total",
            "WebSocket connections accepted.",
            load(&self.ws_opened),
        );
        counter(
            &mut out,
            "hearth_ws_messages_in_total",
            "WebSocket messages from clients.",
            load(&self.ws_messages_in),
        );
        counter(
            &mut out,
            "hearth_ws_messages_out_total",
            "WebSocket messages queued to clients.",
            load(&self.ws_messages_out),
        );
        counter(
            &mut out,
            "hearth_ws_dropped_slow_total",
            "WebSocket clients dropped for a full send buffer.",
            load(&self.ws_dropped_slow),
        );
        let _ = writeln!(out, "# HELP hearth_ws_publish_seconds Time to queue one publish to every subscriber.\n# TYPE hearth_ws_publish_seconds histogram");
        self.ws_publish_latency
            .render(&mut out, "hearth_ws_publish_seconds", "");
        self.net.render(&mut out);
        counter(
            &mut out,
            "hearth_rooms_relays_total",
            "Room events relayed to subscribing nodes, one per node per event.",
            load(&self.rooms_relays),
        );
        counter(
            &mut out,
            "hearth_rooms_offline_total",
            "Owner nodes a rooms hub found gone, telling their subscribers offline.",
            load(&self.rooms_offline),
        );
        counter(
            &mut out,
            "hearth_rooms_refused_total",
            "Room requests from other nodes refused or dropped by the rooms hub.",
            load(&self.rooms_refused),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.routed();
        m.error(SendErrorKind::Timeout);
        m.http_response(404, Duration::from_micros(300));
        let text = m.render(&Gauges {
            processes: 3,
            peers: 0,
            ws_open: 1,
        });
        assert!(text.contains("hearth_messages_routed_total 1\n"));
        assert!(text.contains("hearth_message_errors_total{kind=\"timeout\"} 1\n"));
        assert!(text.contains("hearth_http_responses_total{class=\"4xx\"} 1\n"));
        assert!(text.contains("hearth_http_request_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("hearth_http_request_seconds_count 1\n"));
        assert!(text.contains("hearth_processes 3\n"));
    }
}
