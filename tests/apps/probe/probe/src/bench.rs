//! Benchmarks, driven by the SDK executor: each runs as a task that awaits
//! its requests with `ask().await` and answers the asker at the end.

use std::time::Instant;

use hearth_sdk::json::{json, Value};
use hearth_sdk::{Address, Request};
use serde::Deserialize;

use crate::relay::{resolve, seq_body};
use crate::{reply, send_err_value, DEFAULT_TIMEOUT_MS};

#[derive(Deserialize)]
pub(crate) struct PingArgs {
    target: String,
    count: u64,
    #[serde(default)]
    body_bytes: usize,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct BlastArgs {
    target: String,
    count: u64,
    window: u64,
    timeout_ms: Option<u64>,
}

/// `bench_ping`: `count` sequential request/responses carrying
/// `{"echo": "<body_bytes of padding>"}`, each timed; answers `asker` with
/// `{"count", "p50_ns", "p99_ns", "mean_ns", "total_ns"}`.
pub(crate) fn ping(our: &Address, asker: u64, args: PingArgs) {
    let target = match resolve(our, &args.target) {
        Ok(target) => target,
        Err(error) => return reply(asker, &send_err_value(&error, None)),
    };
    let timeout = args.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let body = json!({"echo": "x".repeat(args.body_bytes)})
        .to_string()
        .into_bytes();
    hearth_sdk::spawn_task(async move {
        let mut samples = Vec::with_capacity(usize::try_from(args.count).unwrap_or(0));
        let start = Instant::now();
        for i in 0..args.count {
            let sent = Instant::now();
            let ask = Request::to(&target)
                .body(body.clone())
                .timeout_ms(timeout)
                .ask();
            if let Err(error) = ask.await {
                let context = format!("ping {i} of {}", args.count);
                return reply(asker, &send_err_value(&error, Some(&context)));
            }
            samples.push(nanos(sent));
        }
        let total_ns = nanos(start);
        reply(asker, &summary(samples, total_ns));
    });
}

/// `bench_blast`: `count` fire-and-forget `{"seq": i}` in windows of
/// `window`, each window closed by an `{"echo": null}` request whose
/// response lets the next window go (so the target's mailbox never
/// overflows). Answers `{"count", "total_ns", "errors", "refused"}`, where
/// `errors` counts refused sends and failed barriers, `refused` the sends
/// alone (a refused message never arrives; any other missing one was lost).
pub(crate) fn blast(our: &Address, asker: u64, args: BlastArgs) {
    let target = match resolve(our, &args.target) {
        Ok(target) => target,
        Err(error) => return reply(asker, &send_err_value(&error, None)),
    };
    let timeout = args.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let window = args.window.max(1);
    let barrier = json!({"echo": null}).to_string().into_bytes();
    hearth_sdk::spawn_task(async move {
        let start = Instant::now();
        let (mut errors, mut refused) = (0u64, 0u64);
        let mut next = 0;
        while next < args.count {
            let end = args.count.min(next + window);
            for i in next..end {
                if Request::to(&target).body(seq_body(i)).send().is_err() {
                    errors += 1;
                    refused += 1;
                }
            }
            next = end;
            let ask = Request::to(&target)
                .body(barrier.clone())
                .timeout_ms(timeout)
                .ask();
            if ask.await.is_err() {
                errors += 1;
            }
        }
        let total_ns = nanos(start);
        reply(
            asker,
            &json!({"count": args.count, "total_ns": total_ns, "errors": errors, "refused": refused}),
        );
    });
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], percent: usize) -> u64 {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or(0)
}

fn summary(mut samples: Vec<u64>, total_ns: u64) -> Value {
    samples.sort_unstable();
    let count = samples.len() as u64;
    let mean_ns = samples.iter().sum::<u64>().checked_div(count).unwrap_or(0);
    json!({
        "count": count,
        "p50_ns": percentile(&samples, 50),
        "p99_ns": percentile(&samples, 99),
        "mean_ns": mean_ns,
        "total_ns": total_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50), 50);
        assert_eq!(percentile(&samples, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(summary(vec![3, 1, 2], 10)["mean_ns"], 2);
    }
}
