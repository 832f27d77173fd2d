//! The Prometheus exposition: every family with its type line, state read at
//! scrape time from the source, bounded labels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{
    METHOD_GET_STREAM, Metrics, Outcome, PoolSnapshot, ProcessSnapshot, ServerSnapshot, Snapshot,
    StderrSnapshot,
};

fn sample() -> Snapshot {
    Snapshot {
        pool: PoolSnapshot {
            size: 4,
            idle: 1,
            in_use: 3,
            waiting: 2,
            max: 8,
            created: 10,
            destroyed: 6,
            recycled: 50,
            broken: 2,
            retired: 3,
            create_failures: 1,
            wait_timeouts: 5,
        },
        processes: ProcessSnapshot {
            spawned: 11,
            exited: vec![("exit".into(), 4), ("killed".into(), 2)],
            restarts: 2,
            live: 4,
        },
        servers: vec![ServerSnapshot {
            server: "srv".into(),
            up: true,
            pool: PoolSnapshot {
                size: 4,
                max: 8,
                ..PoolSnapshot::default()
            },
            sessions: 3,
        }],
        sessions: 3,
        sessions_ended: vec![("pressure".into(), 7), ("delete".into(), 1)],
        open_fds: Some(42),
        fd_limit: Some(1024),
        zombies: 0,
        stderr: vec![StderrSnapshot {
            server: "srv".into(),
            forwarded_lines: 7,
            suppressed_lines: 90,
            suppressed_bytes: 1234,
        }],
    }
}

fn scraped() -> String {
    let m = Metrics::new();
    m.set_source(Arc::new(sample));
    m.observe_request("tools/call", Outcome::Ok, Duration::from_millis(3));
    m.observe_request("tools/call", Outcome::Timeout, Duration::from_secs(61));
    m.encode().unwrap()
}

#[test]
fn every_family_is_exposed_with_its_type() {
    let text = scraped();
    let families = [
        ("stdiopool_requests_total", "counter"),
        ("stdiopool_request_duration_seconds", "histogram"),
        ("stdiopool_pool_size", "gauge"),
        ("stdiopool_pool_idle", "gauge"),
        ("stdiopool_pool_in_use", "gauge"),
        ("stdiopool_pool_waiting", "gauge"),
        ("stdiopool_pool_max", "gauge"),
        ("stdiopool_pool_created_total", "counter"),
        ("stdiopool_pool_destroyed_total", "counter"),
        ("stdiopool_pool_recycled_total", "counter"),
        ("stdiopool_pool_broken_total", "counter"),
        ("stdiopool_pool_retired_total", "counter"),
        ("stdiopool_pool_create_failures_total", "counter"),
        ("stdiopool_pool_wait_timeouts_total", "counter"),
        ("stdiopool_process_spawned_total", "counter"),
        ("stdiopool_process_exited_total", "counter"),
        ("stdiopool_process_restarts_total", "counter"),
        ("stdiopool_process_live", "gauge"),
        ("stdiopool_sessions", "gauge"),
        ("stdiopool_sessions_ended_total", "counter"),
        ("stdiopool_open_fds", "gauge"),
        ("stdiopool_fd_limit", "gauge"),
        ("stdiopool_zombies", "gauge"),
        ("stdiopool_build_info", "gauge"),
        ("stdiopool_server_up", "gauge"),
        ("stdiopool_server_pool_size", "gauge"),
        ("stdiopool_server_pool_idle", "gauge"),
        ("stdiopool_server_pool_in_use", "gauge"),
        ("stdiopool_server_pool_max", "gauge"),
        ("stdiopool_server_sessions", "gauge"),
    ];
    for (name, ty) in families {
        assert!(
            text.contains(&format!("# TYPE {name} {ty}\n")),
            "missing `# TYPE {name} {ty}` in:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "missing HELP for {name}"
        );
    }
}

#[test]
fn samples_carry_the_snapshot_values_and_request_labels() {
    let text = scraped();
    for line in [
        "stdiopool_pool_size 4\n",
        "stdiopool_pool_waiting 2\n",
        "stdiopool_pool_wait_timeouts_total 5\n",
        "stdiopool_process_exited_total{cause=\"exit\"} 4\n",
        "stdiopool_process_exited_total{cause=\"killed\"} 2\n",
        "stdiopool_sessions_ended_total{reason=\"pressure\"} 7\n",
        "stdiopool_sessions_ended_total{reason=\"delete\"} 1\n",
        "stdiopool_open_fds 42\n",
        "stdiopool_zombies 0\n",
        "stdiopool_requests_total{method=\"tools/call\",outcome=\"ok\"} 1\n",
        "stdiopool_requests_total{method=\"tools/call\",outcome=\"timeout\"} 1\n",
        "stdiopool_request_duration_seconds_count{method=\"tools/call\"} 2\n",
        "stdiopool_request_duration_seconds_bucket{method=\"tools/call\",le=\"0.005\"} 1\n",
        "stdiopool_server_stderr_lines_total{server=\"srv\",outcome=\"forwarded\"} 7\n",
        "stdiopool_server_stderr_lines_total{server=\"srv\",outcome=\"suppressed\"} 90\n",
        "stdiopool_server_stderr_suppressed_bytes_total{server=\"srv\"} 1234\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn state_is_read_at_each_scrape() {
    let m = Metrics::new();
    let live = Arc::new(AtomicU64::new(1));
    let reader = live.clone();
    m.set_source(Arc::new(move || Snapshot {
        processes: ProcessSnapshot {
            live: reader.load(Ordering::SeqCst),
            ..ProcessSnapshot::default()
        },
        ..Snapshot::default()
    }));
    assert!(m.encode().unwrap().contains("stdiopool_process_live 1\n"));
    live.store(7, Ordering::SeqCst);
    assert!(m.encode().unwrap().contains("stdiopool_process_live 7\n"));
}

#[test]
fn client_chosen_method_names_do_not_create_series() {
    let m = Metrics::new();
    for i in 0..50 {
        m.observe_request(&format!("made/up/{i}"), Outcome::Rejected, Duration::ZERO);
    }
    m.observe_request(METHOD_GET_STREAM, Outcome::Ok, Duration::ZERO);
    let text = m.encode().unwrap();
    assert!(text.contains("stdiopool_requests_total{method=\"other\",outcome=\"rejected\"} 50\n"));
    assert!(text.contains("stdiopool_requests_total{method=\"GET\",outcome=\"ok\"} 1\n"));
    assert!(!text.contains("made/up"));
}

#[test]
fn unknown_fd_counts_are_left_out() {
    let m = Metrics::new();
    m.set_source(Arc::new(Snapshot::default));
    let text = m.encode().unwrap();
    assert!(!text.contains("stdiopool_open_fds"));
    assert!(text.contains("stdiopool_zombies 0\n"));
}
