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
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

mod labels;
mod listener;

pub use labels::*;
use labels::{EraLabels, MethodLabels, RequestLabels, ServerRequestLabels};
pub use listener::ListenerSnapshot;
use listener::{ListenerCollector, ListenerSource};

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

/// One served server's state (`server` label): the servers of a config
/// file, or the single server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSnapshot {
    /// The server name (a config file's entry name, or `--name`): bounded by
    /// the configuration, never chosen by a client.
    pub server: String,
    /// Whether it serves (0: its command could not start, or it is draining).
    pub up: bool,
    /// Its pool.
    pub pool: PoolSnapshot,
    /// Its open MCP sessions.
    pub sessions: u64,
}

/// Everything read at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The pool (with many servers: the sum of their pools).
    pub pool: PoolSnapshot,
    /// Each server, labelled by name.
    pub servers: Vec<ServerSnapshot>,
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

fn encode_servers(enc: &mut DescriptorEncoder, servers: &[ServerSnapshot]) -> fmt::Result {
    if servers.is_empty() {
        return Ok(());
    }
    type Read = fn(&ServerSnapshot) -> u64;
    let gauges: [(&str, &str, Read); 6] = [
        (
            "stdiopool_server_up",
            "Whether the server serves (1) or not (0: its command could not start, or it is draining), by server",
            |s| u64::from(s.up),
        ),
        (
            "stdiopool_server_pool_size",
            "Server processes alive (idle + in use + being created), by server",
            |s| s.pool.size,
        ),
        (
            "stdiopool_server_pool_idle",
            "Idle server processes, by server",
            |s| s.pool.idle,
        ),
        (
            "stdiopool_server_pool_in_use",
            "Server processes checked out or being created, by server",
            |s| s.pool.in_use,
        ),
        (
            "stdiopool_server_pool_max",
            "Most server processes allowed at once, by server",
            |s| s.pool.max,
        ),
        (
            "stdiopool_server_sessions",
            "Open MCP sessions, by server",
            |s| s.sessions,
        ),
    ];
    let kind = ConstGauge::new(0u64).metric_type();
    for (name, help, read) in gauges {
        let mut family = enc.encode_descriptor(name, help, None, kind)?;
        for s in servers {
            let labels = [("server", s.server.as_str())];
            ConstGauge::new(read(s)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
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
        encode_servers(e, &s.servers)?;
        encode_stderr(e, &s.stderr)?;
        Ok(())
    }
}

/// The registry and the metrics the proxy records directly.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    server_requests: Family<ServerRequestLabels, Counter>,
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
        let server_requests = Family::<ServerRequestLabels, Counter>::default();
        registry.register(
            "stdiopool_server_requests",
            "MCP requests that reached a server's endpoint, by server, JSON-RPC method and outcome",
            server_requests.clone(),
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
            server_requests,
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
        let method = bounded_method(method);
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

    /// As [`Metrics::observe_request`], and counted for `server` too.
    pub fn observe_server_request(
        &self,
        server: &str,
        method: &str,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        self.observe_request(method, outcome, elapsed);
        self.server_requests
            .get_or_create(&ServerRequestLabels {
                server: server.to_owned(),
                method: bounded_method(method),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The `method` label: one of the `METHOD_*` constants as is, else [`method_label`].
fn bounded_method(method: &str) -> &'static str {
    match method {
        METHOD_RESPONSE => METHOD_RESPONSE,
        METHOD_INVALID => METHOD_INVALID,
        METHOD_GET_STREAM => METHOD_GET_STREAM,
        METHOD_DELETE => METHOD_DELETE,
        other => method_label(other),
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

    #[test]
    fn server_requests_carry_the_server_label_and_count_in_the_totals() {
        let m = Metrics::new();
        m.observe_server_request("time", "tools/call", Outcome::Ok, Duration::from_millis(1));
        m.observe_server_request("fs", "tools/call", Outcome::Ok, Duration::from_millis(1));
        let text = m.encode().unwrap();
        assert!(text.contains(
            "stdiopool_server_requests_total{server=\"time\",method=\"tools/call\",outcome=\"ok\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "stdiopool_server_requests_total{server=\"fs\",method=\"tools/call\",outcome=\"ok\"} 1\n"
        ), "{text}");
        assert!(
            text.contains("stdiopool_requests_total{method=\"tools/call\",outcome=\"ok\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn server_gauges_are_labelled_by_server() {
        let m = Metrics::new();
        m.set_source(Arc::new(|| Snapshot {
            servers: vec![
                ServerSnapshot {
                    server: "a".into(),
                    up: true,
                    pool: PoolSnapshot {
                        size: 2,
                        max: 4,
                        ..PoolSnapshot::default()
                    },
                    sessions: 1,
                },
                ServerSnapshot {
                    server: "b".into(),
                    ..ServerSnapshot::default()
                },
            ],
            ..Snapshot::default()
        }));
        let text = m.encode().unwrap();
        for line in [
            "stdiopool_server_up{server=\"a\"} 1\n",
            "stdiopool_server_up{server=\"b\"} 0\n",
            "stdiopool_server_pool_size{server=\"a\"} 2\n",
            "stdiopool_server_pool_max{server=\"a\"} 4\n",
            "stdiopool_server_sessions{server=\"a\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
