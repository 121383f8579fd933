//! The pool's counters, rendered in the Prometheus text format for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the job latency histogram.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
pub struct PoolMetrics {
    pub starts: AtomicU64,
    pub start_failures: AtomicU64,
    pub timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub rejected: AtomicU64,
    pub in_flight: AtomicI64,
    pub queue_depth: AtomicI64,
    pub alive: AtomicI64,
    crashes: Mutex<BTreeMap<String, u64>>,
    recycles: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    if let Ok(mut map) = map.lock() {
        *map.entry(key.to_owned()).or_default() += 1;
    }
}

impl PoolMetrics {
    pub fn crash(&self, reason: &str) {
        bump(&self.crashes, reason);
    }

    pub fn recycle(&self, reason: &str) {
        bump(&self.recycles, reason);
    }

    pub fn crashes(&self, reason: &str) -> u64 {
        self.crashes
            .lock()
            .map(|m| m.get(reason).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn observe(&self, kind: &'static str, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Ok(mut map) = self.latency.lock() {
            let h = map.entry(kind).or_default();
            for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *count += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    pub fn render(&self, out: &mut String) {
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            out,
            "attendansee_worker_starts_total",
            "Worker processes started (handshake completed).",
            load(&self.starts),
        );
        counter(
            out,
            "attendansee_worker_start_failures_total",
            "Worker processes that failed to start.",
            load(&self.start_failures),
        );
        counter(
            out,
            "attendansee_worker_timeouts_total",
            "Jobs whose worker was killed for exceeding the job timeout.",
            load(&self.timeouts),
        );
        counter(
            out,
            "attendansee_job_retries_total",
            "Jobs retried on another worker after their worker crashed.",
            load(&self.retries),
        );
        counter(
            out,
            "attendansee_jobs_rejected_total",
            "Jobs refused with Overloaded because the queue was full.",
            load(&self.rejected),
        );
        let labelled =
            |out: &mut String, name: &str, help: &str, map: &Mutex<BTreeMap<String, u64>>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                if let Ok(map) = map.lock() {
                    for (reason, value) in map.iter() {
                        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {value}");
                    }
                }
            };
        labelled(
            out,
            "attendansee_worker_crashes_total",
            "Worker processes that died or were killed, by reason.",
            &self.crashes,
        );
        labelled(
            out,
            "attendansee_worker_recycles_total",
            "Worker processes replaced on purpose, by reason.",
            &self.recycles,
        );
        gauge(
            out,
            "attendansee_workers_alive",
            "Worker processes ready or busy.",
            self.alive.load(Ordering::Relaxed),
        );
        gauge(
            out,
            "attendansee_queue_depth",
            "Jobs waiting for a worker.",
            self.queue_depth.load(Ordering::Relaxed),
        );
        gauge(
            out,
            "attendansee_jobs_in_flight",
            "Jobs being processed by a worker.",
            self.in_flight.load(Ordering::Relaxed),
        );
        let name = "attendansee_job_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Job latency from submission to answer, by kind.\n# TYPE {name} histogram"
        );
        if let Ok(map) = self.latency.lock() {
            for (kind, h) in map.iter() {
                for (count, bound) in h.counts.iter().zip(BUCKETS) {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{{kind=\"{kind}\"}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{kind=\"{kind}\"}} {}", h.count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_cumulative_histogram_buckets() {
        let m = PoolMetrics::default();
        m.crash("SIGSEGV");
        m.crash("SIGSEGV");
        m.observe("ping", Duration::from_millis(3));
        m.observe("ping", Duration::from_millis(300));
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("attendansee_worker_crashes_total{reason=\"SIGSEGV\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("attendansee_job_duration_seconds_bucket{kind=\"ping\",le=\"0.005\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("attendansee_job_duration_seconds_bucket{kind=\"ping\",le=\"0.5\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("attendansee_job_duration_seconds_count{kind=\"ping\"} 2"),
            "{out}"
        );
        assert_eq!(m.crashes("SIGSEGV"), 2);
    }
}
