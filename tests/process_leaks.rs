//! Many spawn/stop cycles leave nothing behind: no zombie, no child, no open
//! descriptor. Alone in its own test binary because it compares process-wide
//! counts (open fds, children) that other tests running in parallel threads of
//! the same binary would disturb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/process.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{LIMIT, Rpc, fixture_spec};
use serde_json::json;
use stdiopool::accounting::{Accounting, child_processes, open_fd_count, zombie_children};
use stdiopool::upstream::process::{ChildProcess, StopReason, become_subreaper};

const CYCLES: usize = 200;
const BATCH: usize = 10;

/// One cycle: spawn, maybe talk, then stop or drop. The mix walks every rung of
/// the stop sequence: EOF (most), SIGTERM, SIGKILL through a wrapper, a crash,
/// and the background stop of a dropped handle.
async fn cycle(i: usize, acc: Arc<Accounting>) {
    let args: &[&str] = match i % 20 {
        5 => &["--ignore-stdin-eof"],
        10 => &["--wrapper", "--ignore-stdin-eof", "--ignore-sigterm"],
        12 => &["--ignore-stdin-eof", "--ignore-sigterm"],
        15 => &["--exit-at-start", "1"],
        _ => &[],
    };
    // Graces long enough that a well-behaved server always exits on stdin EOF
    // in time even on a loaded machine (the counts below are exact).
    let mut child = ChildProcess::spawn(&fixture_spec(args, 250, 250), &acc).unwrap();
    if matches!(i % 20, 5 | 10 | 12) {
        // Make sure the flags are in force before the stop begins.
        let mut rpc = Rpc::attach(&mut child);
        assert_eq!(rpc.call("ping", json!({})).await["result"], json!({}));
    } else if i % 20 == 3 {
        let mut rpc = Rpc::attach(&mut child);
        rpc.send("tools/call", json!({"name": "crash", "arguments": {}}))
            .await;
        tokio::time::timeout(LIMIT, child.wait_exit())
            .await
            .unwrap();
    }
    if i.is_multiple_of(7) {
        drop(child);
    } else {
        tokio::time::timeout(LIMIT, child.stop(StopReason::Retired))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_spawn_stop_cycles_leave_no_zombie_child_or_fd() {
    become_subreaper().unwrap();
    let acc = Arc::new(Accounting::new());
    // Warm up: tokio opens its signal and pidfd machinery on the first spawn.
    cycle(1, Arc::clone(&acc)).await;
    let baseline = open_fd_count().unwrap();

    for batch in 0..CYCLES / BATCH {
        let mut set = tokio::task::JoinSet::new();
        for j in 0..BATCH {
            set.spawn(cycle(batch * BATCH + j, Arc::clone(&acc)));
        }
        while let Some(res) = set.join_next().await {
            res.unwrap();
        }
    }
    assert_eq!(acc.wait_for_stops(LIMIT).await, 0, "stops still running");

    let snap = acc.snapshot();
    assert_eq!(snap.spawned, CYCLES as u64 + 1);
    assert_eq!(snap.live, 0, "live table: {:?}", acc.live_children());
    // Every rung was used: SIGTERM (ignore-eof servers and wrappers), SIGKILL,
    // and the group reap of the wrappers' grandchildren.
    assert_eq!(
        snap.terminated_by_stop,
        2 * (CYCLES / 20) as u64,
        "{snap:?}"
    );
    assert_eq!(snap.killed_by_stop, (CYCLES / 20) as u64, "{snap:?}");
    assert_eq!(snap.group_members_reaped, (CYCLES / 20) as u64, "{snap:?}");
    assert_eq!(zombie_children().unwrap(), Vec::<u32>::new());
    assert_eq!(child_processes().unwrap(), vec![]);

    // Descriptors are closed by drops on worker threads; allow them a moment.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut now = open_fd_count().unwrap();
    while now != baseline && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = open_fd_count().unwrap();
    }
    assert_eq!(now, baseline, "open fds before {baseline}, after {now}");
}
