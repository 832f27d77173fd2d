//! Prometheus metrics: request counters and latency recorded by the proxy,
//! plus pool, process and fd/zombie state read at scrape time from a
//! [`MetricsSource`] the binary supplies.
//!
//! Invariants:
//! - label values are bounded: the `method` label is a known MCP method name
//!   or `other` (client-chosen method names never create new series), the
//!   `outcome` label is an [`Outcome`];
//! - state (gauges, pool and process counters) is never copied into the
//!   registry between scrapes: it is read once per scrape through
//!   [`MetricsSource::snapshot`], so a scrape never shows a stale pool.
//!
//! Exposition: Prometheus text format 0.0.4 ([`Metrics::encode`]). The
//! reference of every family is in `docs/PROXY.md`.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram: 0.5 ms to 2 min, wide
/// enough for a warm native server and a slow tool call alike.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// MCP methods that get their own `method` label value; any other is `other`.
pub const KNOWN_METHODS: [&str; 25] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/message",
    "server/discover",
    "sampling/createMessage",
    "elicitation/create",
];

/// `method` label for a client response to a server request.
pub const METHOD_RESPONSE: &str = "response";
/// `method` label for a body that was refused before a method could be read.
pub const METHOD_INVALID: &str = "invalid";
/// `method` label for a method name not in [`KNOWN_METHODS`].
pub const METHOD_OTHER: &str = "other";
/// `method` label for the GET stream.
pub const METHOD_GET_STREAM: &str = "GET";
/// `method` label for DELETE (end of session).
pub const METHOD_DELETE: &str = "DELETE";

/// The protocol era of a request to the MCP endpoint (`era` label of
/// `stdiopool_requests_by_era_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EraLabel {
    /// MCP 2025-11-25 and earlier: `initialize`, sessions.
    Legacy,
    /// MCP 2026-07-28 and later: per-request `_meta`, no sessions.
    Modern,
}

impl EraLabel {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            EraLabel::Legacy => "legacy",
            EraLabel::Modern => "modern",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EraLabels {
    era: &'static str,
}

/// The bounded `method` label for a JSON-RPC method name.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(METHOD_OTHER)
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered with a result (or 202 for a notification / response).
    Ok,
    /// Answered with a JSON-RPC error from the server.
    Error,
    /// Refused at the transport level (4xx), nothing reached a child.
    Rejected,
    /// No free process within the wait timeout (503).
    Unavailable,
    /// The request timed out; the server was sent `notifications/cancelled`.
    Timeout,
    /// The server process crashed or broke the stream mid-request.
    UpstreamFailed,
    /// The client went away before the answer.
    Cancelled,
}

impl Outcome {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
            Outcome::Unavailable => "unavailable",
            Outcome::Timeout => "timeout",
            Outcome::UpstreamFailed => "upstream_failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// Pool state and lifetime counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Processes alive (idle + in use + being created).
    pub size: u64,
    /// Idle processes.
    pub idle: u64,
    /// Processes checked out or being created.
    pub in_use: u64,
    /// Requests waiting for a process.
    pub waiting: u64,
    /// Configured maximum.
    pub max: u64,
    /// Processes created (spawned and initialized).
    pub created: u64,
    /// Processes destroyed (all paths).
    pub destroyed: u64,
    /// Successful health checks on checkout.
    pub recycled: u64,
    /// Processes destroyed because they were broken.
    pub broken: u64,
    /// Processes retired by max uses / max lifetime / idle timeout.
    pub retired: u64,
    /// Failed creations.
    pub create_failures: u64,
    /// Waits for a process that timed out.
    pub wait_timeouts: u64,
}

/// Process lifecycle counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSnapshot {
    /// Processes spawned.
    pub spawned: u64,
    /// Processes that exited, by cause (e.g. `exit`, `signal`, `killed`,
    /// `spawn_failed`); the causes are the upstream layer's fixed set.
    pub exited: Vec<(Cow<'static, str>, u64)>,
    /// Processes spawned to replace one that died unexpectedly.
    pub restarts: u64,
    /// Processes alive now.
    pub live: u64,
}

/// What happened to one server's stderr lines (see the stderr budget in
/// `docs/UPSTREAM.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StderrSnapshot {
    /// The server name (`--name`): one per proxy, so the label stays bounded.
    pub server: String,
    /// Lines forwarded to the log.
    pub forwarded_lines: u64,
    /// Lines suppressed by the stderr budget.
    pub suppressed_lines: u64,
    /// Bytes of the suppressed lines.
    pub suppressed_bytes: u64,
}

/// Everything read at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The pool.
    pub pool: PoolSnapshot,
    /// Server processes.
    pub processes: ProcessSnapshot,
    /// Open MCP sessions.
    pub sessions: u64,
    /// MCP sessions ended, by reason (`idle_timeout`, `pressure`, `delete`,
    /// `process_exit`); the reasons are the proxy's fixed set.
    pub sessions_ended: Vec<(Cow<'static, str>, u64)>,
    /// Open file descriptors of the proxy (`None` if unknown).
    pub open_fds: Option<u64>,
    /// `RLIMIT_NOFILE` soft limit (`None` if unknown).
    pub fd_limit: Option<u64>,
    /// Zombie children not yet reaped.
    pub zombies: u64,
    /// Server stderr lines, by server.
    pub stderr: Vec<StderrSnapshot>,
}

/// Supplies the state read at each scrape. Closures returning a [`Snapshot`] qualify.
pub trait MetricsSource: Send + Sync + 'static {
    /// The state now. Called once per scrape; keep it cheap.
    fn snapshot(&self) -> Snapshot;
}

impl<F> MetricsSource for F
where
    F: Fn() -> Snapshot + Send + Sync + 'static,
{
    fn snapshot(&self) -> Snapshot {
        self()
    }
}

type SharedSource = Arc<RwLock<Option<Arc<dyn MetricsSource>>>>;

/// Client connections and GET streams (the listener's limits), read at
/// scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSnapshot {
    /// Client connections open now.
    pub connections_open: u64,
    /// Most client connections at once.
    pub connection_limit: u64,
    /// File descriptors reserved for server processes.
    pub fds_reserved_for_processes: u64,
    /// Client connections accepted.
    pub connections_accepted: u64,
    /// Connections closed for not sending a request head in time.
    pub header_timeouts: u64,
    /// Kept-alive connections closed for idling too long.
    pub keep_alive_timeouts: u64,
    /// Idle connections closed to make room at the connection limit.
    pub connections_evicted: u64,
    /// Connections closed because the client stopped reading its response.
    pub send_timeouts: u64,
    /// Episodes of the connection limit being reached.
    pub connection_limit_reached: u64,
    /// `accept` failures.
    pub accept_errors: u64,
    /// GET streams open now.
    pub get_streams_open: u64,
    /// Most GET streams at once.
    pub get_stream_limit: u64,
}

type ListenerSource = Arc<RwLock<Option<Arc<dyn Fn() -> ListenerSnapshot + Send + Sync>>>>;

/// The scrape-time collector of the listener's state.
struct ListenerCollector {
    source: ListenerSource,
}

impl fmt::Debug for ListenerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerCollector").finish_non_exhaustive()
    }
}

impl Collector for ListenerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let source = match self.source.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let Some(source) = source else {
            return Ok(());
        };
        let s = source();
        let e = &mut enc;
        gauge(
            e,
            "stdiopool_connections_open",
            "Client connections open",
            s.connections_open,
        )?;
        gauge(
            e,
            "stdiopool_connection_limit",
            "Most client connections at once (from the fd budget or --max-connections)",
            s.connection_limit,
        )?;
        gauge(
            e,
            "stdiopool_fds_reserved_for_processes",
            "File descriptors the budget keeps for server processes",
            s.fds_reserved_for_processes,
        )?;
        counter(
            e,
            "stdiopool_connections_accepted",
            "Client connections accepted",
            s.connections_accepted,
        )?;
        counter(
            e,
            "stdiopool_connections_header_timeouts",
            "Client connections closed for not sending a request head in time",
            s.header_timeouts,
        )?;
        counter(
            e,
            "stdiopool_connections_keep_alive_timeouts",
            "Kept-alive client connections closed for idling too long",
            s.keep_alive_timeouts,
        )?;
        counter(
            e,
            "stdiopool_connections_send_timeouts",
            "Client connections closed because the client took none of its response within the send timeout",
            s.send_timeouts,
        )?;
        counter(
            e,
            "stdiopool_connections_evicted",
            "Idle client connections closed to make room at the connection limit",
            s.connections_evicted,
        )?;
        counter(
            e,
            "stdiopool_connection_limit_reached",
            "Episodes of the connection limit being reached",
            s.connection_limit_reached,
        )?;
        counter(
            e,
            "stdiopool_accept_errors",
            "Failed accepts",
            s.accept_errors,
        )?;
        gauge(
            e,
            "stdiopool_get_streams_open",
            "GET streams open",
            s.get_streams_open,
        )?;
        gauge(
            e,
            "stdiopool_get_stream_limit",
            "Most GET streams open at once",
            s.get_stream_limit,
        )?;
        Ok(())
    }
}

/// The scrape-time collector: encodes a fresh snapshot each time.
struct SnapshotCollector {
    source: SharedSource,
}

impl fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotCollector").finish_non_exhaustive()
    }
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn encode_stderr(enc: &mut DescriptorEncoder, stderr: &[StderrSnapshot]) -> fmt::Result {
    let kind = ConstCounter::new(0u64).metric_type();
    let mut lines = enc.encode_descriptor(
        "stdiopool_server_stderr_lines",
        "Server stderr lines, by server and whether the stderr budget forwarded them to the log or suppressed them",
        None,
        kind,
    )?;
    for s in stderr {
        for (outcome, count) in [
            ("forwarded", s.forwarded_lines),
            ("suppressed", s.suppressed_lines),
        ] {
            let labels = [("server", s.server.as_str()), ("outcome", outcome)];
            ConstCounter::new(count).encode(lines.encode_family(&labels)?)?;
        }
    }
    let mut bytes = enc.encode_descriptor(
        "stdiopool_server_stderr_suppressed_bytes",
        "Bytes of server stderr lines suppressed by the stderr budget, by server",
        None,
        kind,
    )?;
    for s in stderr {
        let labels = [("server", s.server.as_str())];
        ConstCounter::new(s.suppressed_bytes).encode(bytes.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let source = match self.source.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let Some(source) = source else {
            return Ok(());
        };
        let s = source.snapshot();
        let e = &mut enc;

        let p = &s.pool;
        gauge(
            e,
            "stdiopool_pool_size",
            "Server processes alive (idle + in use + being created)",
            p.size,
        )?;
        gauge(e, "stdiopool_pool_idle", "Idle server processes", p.idle)?;
        gauge(
            e,
            "stdiopool_pool_in_use",
            "Server processes checked out or being created",
            p.in_use,
        )?;
        gauge(
            e,
            "stdiopool_pool_waiting",
            "Requests waiting for a server process",
            p.waiting,
        )?;
        gauge(
            e,
            "stdiopool_pool_max",
            "Most server processes allowed at once",
            p.max,
        )?;
        counter(
            e,
            "stdiopool_pool_created",
            "Server processes created",
            p.created,
        )?;
        counter(
            e,
            "stdiopool_pool_destroyed",
            "Server processes destroyed",
            p.destroyed,
        )?;
        counter(
            e,
            "stdiopool_pool_recycled",
            "Successful health checks on checkout",
            p.recycled,
        )?;
        counter(
            e,
            "stdiopool_pool_broken",
            "Server processes destroyed because they were broken",
            p.broken,
        )?;
        counter(
            e,
            "stdiopool_pool_retired",
            "Server processes retired by max uses, max lifetime or idle timeout",
            p.retired,
        )?;
        counter(
            e,
            "stdiopool_pool_create_failures",
            "Failed server process creations",
            p.create_failures,
        )?;
        counter(
            e,
            "stdiopool_pool_wait_timeouts",
            "Waits for a server process that timed out",
            p.wait_timeouts,
        )?;

        let pr = &s.processes;
        counter(
            e,
            "stdiopool_process_spawned",
            "Server processes spawned",
            pr.spawned,
        )?;
        {
            let c = ConstCounter::new(0u64);
            let mut family = e.encode_descriptor(
                "stdiopool_process_exited",
                "Server processes that exited, by cause",
                None,
                c.metric_type(),
            )?;
            for (cause, count) in &pr.exited {
                let labels = [("cause", cause.as_ref())];
                ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            e,
            "stdiopool_process_restarts",
            "Server processes spawned to replace one that died",
            pr.restarts,
        )?;
        gauge(
            e,
            "stdiopool_process_live",
            "Server processes alive now",
            pr.live,
        )?;

        gauge(e, "stdiopool_sessions", "Open MCP sessions", s.sessions)?;
        {
            let c = ConstCounter::new(0u64);
            let mut family = e.encode_descriptor(
                "stdiopool_sessions_ended",
                "MCP sessions ended, by reason",
                None,
                c.metric_type(),
            )?;
            for (reason, count) in &s.sessions_ended {
                let labels = [("reason", reason.as_ref())];
                ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(fds) = s.open_fds {
            gauge(
                e,
                "stdiopool_open_fds",
                "Open file descriptors of the proxy",
                fds,
            )?;
        }
        if let Some(limit) = s.fd_limit {
            gauge(
                e,
                "stdiopool_fd_limit",
                "Soft limit on open file descriptors (RLIMIT_NOFILE)",
                limit,
            )?;
        }
        gauge(
            e,
            "stdiopool_zombies",
            "Zombie child processes not yet reaped",
            s.zombies,
        )?;
        encode_stderr(e, &s.stderr)?;
        Ok(())
    }
}

/// The registry and the metrics the proxy records directly.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
    eras: Family<EraLabels, Counter>,
    source: SharedSource,
    listener: ListenerSource,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered; pool and process families
    /// appear once [`Metrics::set_source`] is called.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "stdiopool_requests",
            "MCP requests handled, by JSON-RPC method and outcome",
            requests.clone(),
        );
        let duration: Family<MethodLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "stdiopool_request_duration",
            "Time from receiving a request to its answer, by JSON-RPC method",
            Unit::Seconds,
            duration.clone(),
        );
        let eras = Family::<EraLabels, Counter>::default();
        registry.register(
            "stdiopool_requests_by_era",
            "Requests that reached the MCP endpoint's handlers (past Origin and auth), by protocol era",
            eras.clone(),
        );
        let info = ConstGaugeInfo;
        registry.register_collector(Box::new(info));
        let source: SharedSource = Arc::new(RwLock::new(None));
        registry.register_collector(Box::new(SnapshotCollector {
            source: source.clone(),
        }));
        let listener: ListenerSource = Arc::new(RwLock::new(None));
        registry.register_collector(Box::new(ListenerCollector {
            source: listener.clone(),
        }));
        Metrics {
            registry,
            requests,
            duration,
            eras,
            source,
            listener,
        }
    }

    /// Sets (or replaces) what scrape-time state is read from.
    pub fn set_source(&self, source: Arc<dyn MetricsSource>) {
        match self.source.write() {
            Ok(mut slot) => *slot = Some(source),
            Err(poisoned) => *poisoned.into_inner() = Some(source),
        }
    }

    /// Sets (or replaces) where the listener's state is read from.
    pub fn set_listener_source(&self, source: Arc<dyn Fn() -> ListenerSnapshot + Send + Sync>) {
        match self.listener.write() {
            Ok(mut slot) => *slot = Some(source),
            Err(poisoned) => *poisoned.into_inner() = Some(source),
        }
    }

    /// Counts one request under its protocol era.
    pub fn observe_era(&self, era: EraLabel) {
        self.eras
            .get_or_create(&EraLabels { era: era.as_str() })
            .inc();
    }

    /// Records one request. `method` goes through [`method_label`] unless it
    /// is already one of the `METHOD_*` constants.
    pub fn observe_request(&self, method: &str, outcome: Outcome, elapsed: Duration) {
        let method = match method {
            METHOD_RESPONSE => METHOD_RESPONSE,
            METHOD_INVALID => METHOD_INVALID,
            METHOD_GET_STREAM => METHOD_GET_STREAM,
            METHOD_DELETE => METHOD_DELETE,
            other => method_label(other),
        };
        self.requests
            .get_or_create(&RequestLabels {
                method,
                outcome: outcome.as_str(),
            })
            .inc();
        self.duration
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `stdiopool_build_info{version}` 1.
#[derive(Debug)]
struct ConstGaugeInfo;

impl Collector for ConstGaugeInfo {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let g = ConstGauge::new(1i64);
        let mut family = enc.encode_descriptor(
            "stdiopool_build_info",
            "Build information; the value is always 1",
            None,
            MetricType::Gauge,
        )?;
        g.encode(family.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)
    }
}

#[cfg(test)]
mod exposition_tests;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("x/../../evil"), METHOD_OTHER);
        assert_eq!(method_label(""), METHOD_OTHER);
    }

    #[test]
    fn no_source_means_no_pool_families() {
        let m = Metrics::new();
        let text = m.encode().unwrap();
        assert!(!text.contains("stdiopool_pool_size"));
        assert!(text.contains("# TYPE stdiopool_build_info gauge"));
        // Empty families are left out of the exposition until first used.
        assert!(!text.contains("stdiopool_requests_total"));
        m.observe_request("ping", Outcome::Ok, Duration::from_millis(2));
        let text = m.encode().unwrap();
        assert!(text.contains("stdiopool_requests_total{method=\"ping\",outcome=\"ok\"} 1"));
    }
}
