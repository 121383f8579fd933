//! Counters the server exposes on `GET /metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Default)]
pub struct Metrics {
    responses_by_class: [AtomicU64; 5],
}

impl Metrics {
    pub fn record_response(&self, status: u16) {
        if let Some(counter) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.responses_by_class.get(usize::from(i)))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP attendansee_http_responses_total HTTP responses sent, by status class.\n",
        );
        out.push_str("# TYPE attendansee_http_responses_total counter\n");
        for (class, counter) in CLASSES.iter().zip(&self.responses_by_class) {
            let _ = writeln!(
                out,
                "attendansee_http_responses_total{{class=\"{class}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        if let Some(bytes) = resident_memory_bytes() {
            out.push_str(
                "# HELP process_resident_memory_bytes Resident memory of the server process.\n",
            );
            out.push_str("# TYPE process_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "process_resident_memory_bytes {bytes}");
        }
        out
    }
}

/// Middleware counting every response.
pub async fn count_responses(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    metrics.record_response(response.status().as_u16());
    response
}

/// Resident set size of this process, from `/proc` (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class_and_rendered() {
        let metrics = Metrics::default();
        metrics.record_response(200);
        metrics.record_response(201);
        metrics.record_response(404);
        metrics.record_response(42);
        let text = metrics.render();
        assert!(
            text.contains("attendansee_http_responses_total{class=\"2xx\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("attendansee_http_responses_total{class=\"4xx\"} 1"),
            "{text}"
        );
        assert!(resident_memory_bytes().unwrap() > 0);
    }
}
