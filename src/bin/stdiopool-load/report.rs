//! What one run measured: per-worker results, merged into the report that
//! is printed (text or JSON).

use super::*;

/// What one worker measured.
#[derive(Default)]
pub(super) struct WorkerResult {
    pub(super) latencies_ns: Vec<u64>,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

impl WorkerResult {
    pub(super) fn record(&mut self, outcome: anyhow::Result<()>, started: Instant) {
        match outcome {
            Ok(()) => self
                .latencies_ns
                .push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }
}

/// The results of one run.
pub(super) struct Report {
    pub(super) target: &'static str,
    pub(super) ok: u64,
    pub(super) errors: u64,
    pub(super) first_error: String,
    pub(super) elapsed: Duration,
    pub(super) latencies_ns: Vec<u64>,
    pub(super) replies_json: usize,
    pub(super) replies_sse: usize,
    pub(super) sessions_opened: usize,
}

impl Report {
    pub(super) fn new(target: &'static str, results: Vec<WorkerResult>, elapsed: Duration) -> Self {
        let mut latencies_ns = Vec::new();
        let mut errors = 0;
        let mut first_error = String::new();
        for r in results {
            latencies_ns.extend(r.latencies_ns);
            errors += r.errors;
            if first_error.is_empty() {
                first_error = r.first_error.unwrap_or_default();
            }
        }
        latencies_ns.sort_unstable();
        Report {
            target,
            ok: latencies_ns.len() as u64,
            errors,
            first_error,
            elapsed,
            latencies_ns,
            replies_json: 0,
            replies_sse: 0,
            sessions_opened: 0,
        }
    }

    /// Nearest-rank percentile, in microseconds.
    pub(super) fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        let rank = (p / 100.0 * self.latencies_ns.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.latencies_ns.len()) - 1;
        self.latencies_ns[idx] as f64 / 1000.0
    }

    pub(super) fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    pub(super) fn mean_us(&self) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        self.latencies_ns.iter().map(|&n| n as f64).sum::<f64>()
            / self.latencies_ns.len() as f64
            / 1000.0
    }

    pub(super) fn summary(&self, common: &Common) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{label}{target} c={c}: {ok} ok, {err} errors in {secs:.2}s = {rps:.1} req/s; \
             latency p50 {p50:.0} us, p99 {p99:.0} us, p999 {p999:.0} us, max {max:.0} us",
            label = if common.label.is_empty() {
                String::new()
            } else {
                format!("[{}] ", common.label)
            },
            target = self.target,
            c = common.concurrency,
            ok = self.ok,
            err = self.errors,
            secs = self.elapsed.as_secs_f64(),
            rps = self.rps(),
            p50 = self.percentile_us(50.0),
            p99 = self.percentile_us(99.0),
            p999 = self.percentile_us(99.9),
            max = self.percentile_us(100.0),
        );
        if self.target == "http" {
            let _ = write!(
                s,
                "; replies {} json / {} sse; {} sessions opened",
                self.replies_json, self.replies_sse, self.sessions_opened
            );
        }
        if self.errors > 0 {
            let _ = write!(s, "; first error: {}", self.first_error);
        }
        s
    }

    pub(super) fn to_json(&self, common: &Common) -> Value {
        json!({
            "label": common.label,
            "target": self.target,
            "concurrency": common.concurrency,
            "requests_asked": common.requests,
            "warmup": common.warmup,
            "payload_bytes": common.payload_bytes,
            "ok": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rps": self.rps(),
            "mean_us": self.mean_us(),
            "p50_us": self.percentile_us(50.0),
            "p99_us": self.percentile_us(99.0),
            "p999_us": self.percentile_us(99.9),
            "max_us": self.percentile_us(100.0),
            "replies_json": self.replies_json,
            "replies_sse": self.replies_sse,
            "sessions_opened": self.sessions_opened,
        })
    }
}

// ---------------------------------------------------------------- http
