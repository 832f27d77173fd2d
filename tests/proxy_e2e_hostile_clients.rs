//! End to end, issue 18: hostile clients cannot take the proxy down.
//!
//! The real `stdiopool` binary runs in front of the fixture with its
//! open-file limit lowered to 256 (`prlimit`, util-linux, on every Debian),
//! and a flood of 600 connections is thrown at it: connections that never
//! finish their request head, then (second test) connections that finish a
//! request and idle on keep-alive plus a flood of GET streams. Meanwhile a
//! well-behaved client at concurrency 2 must get ≥ 99 % of its calls
//! answered, `/healthz` and `/readyz` must answer, a server process killed
//! with SIGKILL must be replaced and serve; afterwards the proxy's fd count
//! must come back near its pre-flood value within the relevant timeout plus a
//! few seconds, and SIGTERM must still exit 0 leaving no process behind.
//!
//! The proxy never hits `EMFILE` (`stdiopool_accept_errors_total` stays 0):
//! the connection limit keeps client sockets below the fd budget.
//!
//! Smaller tests pin the other client-controlled phases: a body trickled past
//! `--body-read-timeout`, a client that stops reading its response
//! (`--send-timeout`), and the soft fd limit raised to the hard one at start.
//!
//! Every wait is bounded; the two flood tests take turns (one flood at a time on a
//! small CI machine). This binary makes itself a child subreaper so that a
//! leaked server process would be re-parented here and seen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e_support::{Mcp, ProxyProcess, Req, descendants, exists, fixture_args, wait_until};
use hyper::http::{Method, StatusCode};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use serde_json::json;
use stdiopool::accounting::FDS_PER_PROCESS;
use stdiopool::upstream::process::become_subreaper;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// One flood at a time.
static TURN: Mutex<()> = Mutex::const_new(());

const FLOOD: usize = 600;
const CALLS: usize = 300;
/// Bound of one call of the well-behaved client (a call that takes longer
/// counts as unanswered).
const CALL_BOUND: Duration = Duration::from_secs(15);
/// "A few seconds" on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(7);
/// How close to its pre-flood value the fd count must come back.
const FD_TOLERANCE: usize = 12;

fn start(opts: &[&str]) -> ProxyProcess {
    let args = fixture_args(opts, &[]);
    ProxyProcess::launch_via(&["prlimit", "--nofile=256:256"], &args).unwrap_or_else(|f| {
        panic!(
            "stdiopool did not start under prlimit ({}):\n{}{}",
            f.status, f.stdout, f.stderr
        )
    })
}

/// The proxy's open fds, less those its server processes account for
/// (session mode ends the flood with more sessions, each owning a process,
/// than it started with; those fds are not the flood's).
fn open_fds(pid: u32) -> usize {
    let all = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let children = descendants(pid).iter().filter(|p| p.ppid == pid).count();
    all.saturating_sub(children * FDS_PER_PROCESS as usize)
}

/// The proxy's fd count once nothing is going on (two equal reads in a row).
async fn settled_fds(proxy: &ProxyProcess) -> usize {
    let mut last = open_fds(proxy.pid());
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = open_fds(proxy.pid());
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// `n` connections made at once; each sends `bytes` and then nothing, and
/// is kept open by the caller.
async fn flood(addr: SocketAddr, n: usize, bytes: &'static [u8]) -> Vec<TcpStream> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(async move {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(bytes).await.ok()?;
            Some(s)
        });
    }
    let mut conns = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Some(s)) = r {
            conns.push(s);
        }
    }
    conns
}

/// A GET of an ops endpoint, bounded; its status.
async fn ops(proxy: &ProxyProcess, path: &str) -> Option<StatusCode> {
    let req = Req::new(proxy.addr, Method::GET, path);
    match tokio::time::timeout(CALL_BOUND, req.try_send()).await {
        Ok(Ok(reply)) => Some(reply.status),
        _ => None,
    }
}

/// What the well-behaved client saw.
#[derive(Debug, Default)]
struct Calls {
    answered: usize,
    /// (index of the call, pid that answered it)
    pids: Vec<(usize, u32)>,
    failures: Vec<String>,
}

/// `CALLS` calls of the `pid` tool at concurrency 2; `on_call(i)` runs
/// before call `i` (the kill). A session that ends (its process was killed,
/// session mode) is re-initialized, as an MCP client does on 404.
async fn well_behaved_client(
    proxy: &Arc<ProxyProcess>,
    last_pid: Arc<std::sync::Mutex<Option<u32>>>,
    on_call: impl Fn(usize) + Send + Sync + 'static,
) -> Calls {
    let next = Arc::new(AtomicUsize::new(0));
    let on_call = Arc::new(on_call);
    let mut workers = Vec::new();
    for _ in 0..2 {
        let next = next.clone();
        let on_call = on_call.clone();
        let last_pid = last_pid.clone();
        let mut mcp = Mcp::connect(proxy).await;
        let proxy = proxy.clone();
        workers.push(tokio::spawn(async move {
            let mut calls = Calls::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CALLS {
                    break;
                }
                on_call(i);
                let id = mcp.next_id();
                let sent =
                    tokio::time::timeout(CALL_BOUND, mcp.tool_req(id, "pid", json!({})).try_send())
                        .await;
                match sent {
                    Ok(Ok(reply)) if reply.status == StatusCode::NOT_FOUND => {
                        calls
                            .failures
                            .push(format!("call {i}: session ended (404)"));
                        mcp = Mcp::connect(&proxy).await;
                    }
                    Ok(Ok(reply)) => {
                        let response = reply.response();
                        if response["id"] == json!(id) {
                            calls.answered += 1;
                            if let Some(pid) =
                                response["result"]["structuredContent"]["pid"].as_u64()
                            {
                                calls.pids.push((i, pid as u32));
                                *last_pid.lock().unwrap() = Some(pid as u32);
                            } else {
                                calls.failures.push(format!("call {i}: {response}"));
                            }
                        } else {
                            calls.failures.push(format!("call {i}: {response}"));
                        }
                    }
                    Ok(Err(e)) => calls.failures.push(format!("call {i}: {e}")),
                    Err(_) => calls
                        .failures
                        .push(format!("call {i}: no answer within {CALL_BOUND:?}")),
                }
            }
            calls
        }));
    }
    let mut all = Calls::default();
    for w in workers {
        let c = w.await.unwrap();
        all.answered += c.answered;
        all.pids.extend(c.pids);
        all.failures.extend(c.failures);
    }
    all
}

/// Every server process of the proxy now.
fn server_pids(proxy: &ProxyProcess) -> BTreeSet<u32> {
    descendants(proxy.pid()).iter().map(|p| p.pid).collect()
}

/// SIGTERM: exit 0, and nothing the proxy started is left (reaping anything
/// adopted here so the test leaves nothing either).
async fn sigterm_leaves_nothing(mut proxy: ProxyProcess, seen: BTreeSet<u32>) {
    proxy.signal(Signal::SIGTERM);
    let status = proxy.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status}\n{}", proxy.stderr());
    let gone = wait_until(Duration::from_secs(10), || seen.iter().all(|p| !exists(*p))).await;
    let left: Vec<u32> = seen.iter().copied().filter(|p| exists(*p)).collect();
    for pid in &left {
        let pid = Pid::from_raw(*pid as i32);
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, Some(WaitPidFlag::empty()));
    }
    assert!(gone, "left behind: {left:?}");
}

/// What the kill hit: the victim and the server processes alive just before.
type Killed = Arc<std::sync::Mutex<Option<(u32, BTreeSet<u32>)>>>;

/// Before call `at`, SIGKILLs the process that answered the client last.
fn killer(
    at: usize,
    proxy_pid: u32,
    last_pid: Arc<std::sync::Mutex<Option<u32>>>,
    killed: Killed,
) -> impl Fn(usize) + Send + Sync + 'static {
    move |i| {
        if i == at {
            let before: BTreeSet<u32> = descendants(proxy_pid).iter().map(|p| p.pid).collect();
            let victim = last_pid
                .lock()
                .unwrap()
                .expect("a call answered before the kill");
            kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
            *killed.lock().unwrap() = Some((victim, before));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_cannot_starve_clients_fds_or_server_processes() {
    let _turn = TURN.lock().await;
    become_subreaper().unwrap();
    let header_timeout = Duration::from_secs(3);
    let proxy = start(&[
        "--pool-size",
        "2",
        "--min-idle",
        "2",
        "--stop-timeout",
        "1s",
        "--header-read-timeout",
        "3s",
    ]);
    let m = proxy
        .wait_metrics("two warm processes", |m| {
            m.get("stdiopool_pool_idle") >= 2.0
        })
        .await;
    let limit = m.get("stdiopool_connection_limit");
    assert!(
        (8.0..256.0).contains(&limit),
        "the connection limit comes from the 256-fd budget: {limit}"
    );
    let before = settled_fds(&proxy).await;
    let mut seen = server_pids(&proxy);

    // A slow call in flight across the flood: its connection is never the
    // one closed to make room.
    let slow_client = Mcp::connect(&proxy).await;
    let slow = tokio::spawn(async move {
        slow_client
            .tool_req(7, "sleep", json!({"ms": 1500}))
            .try_send()
            .await
    });
    // In flight before the flood starts: a request the proxy has not read yet
    // rides on a connection that is still idle (evictable) to the listener,
    // and on a loaded machine the flood can reach the limit first.
    proxy
        .wait_metrics("the slow call in flight", |m| {
            m.get("stdiopool_pool_in_use") >= 1.0
        })
        .await;
    let head: &'static [u8] = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    let held = flood(proxy.addr, FLOOD, head).await;
    assert!(
        held.len() >= FLOOD * 9 / 10,
        "only {} connected",
        held.len()
    );

    assert_eq!(ops(&proxy, "/healthz").await, Some(StatusCode::OK));
    assert_eq!(ops(&proxy, "/readyz").await, Some(StatusCode::OK));

    let killed = Killed::default();
    let last_pid = Arc::new(std::sync::Mutex::new(None));
    let kill_at = killer(CALLS / 3, proxy.pid(), last_pid.clone(), killed.clone());
    let proxy = Arc::new(proxy);
    let calls = well_behaved_client(&proxy, last_pid, kill_at).await;
    let proxy = Arc::try_unwrap(proxy).expect("the client's tasks are done");
    assert!(
        calls.answered * 100 >= CALLS * 99,
        "answered {} of {CALLS}: {:?}",
        calls.answered,
        calls.failures
    );
    let (victim, before_kill) = killed
        .lock()
        .unwrap()
        .clone()
        .expect("a process was killed");
    let replaced = calls
        .pids
        .iter()
        .any(|(i, pid)| *i > CALLS / 3 && !before_kill.contains(pid));
    assert!(
        replaced,
        "no replacement of {victim} served a call: {:?}",
        calls.pids
    );
    let slow = slow
        .await
        .unwrap()
        .expect("the slow call's connection survived the flood");
    let response = slow.response();
    assert!(response["result"].is_object(), "{response}");
    seen.extend(server_pids(&proxy));

    // The flood is still held open by this test: the proxy closes it.
    let flood_ended = Instant::now();
    let back = wait_until(header_timeout + SLACK, || {
        open_fds(proxy.pid()) <= before + FD_TOLERANCE
    })
    .await;
    assert!(
        back,
        "fds {} after {:?}, {before} before the flood",
        open_fds(proxy.pid()),
        flood_ended.elapsed()
    );
    let m = proxy.metrics().await;
    assert!(
        m.get("stdiopool_connection_limit_reached_total") >= 1.0,
        "{m:?}"
    );
    assert!(
        m.get("stdiopool_connections_header_timeouts_total")
            + m.get("stdiopool_connections_evicted_total")
            >= (FLOOD as f64) * 0.9,
        "{m:?}"
    );
    assert_eq!(
        m.get("stdiopool_accept_errors_total"),
        0.0,
        "no EMFILE: {m:?}"
    );
    assert!(m.get("stdiopool_process_spawned_total") >= 3.0, "{m:?}");
    assert!(
        m.get("stdiopool_connections_evicted_total") >= 1.0,
        "newcomers at the limit take the place of idle connections: {m:?}"
    );
    // Once per episode, not once per refused or evicted connection.
    let episodes = m.get("stdiopool_connection_limit_reached_total") as usize;
    let logged = || proxy.stderr().matches("connection limit reached").count();
    wait_until(Duration::from_secs(5), || logged() >= episodes).await;
    assert_eq!(logged(), episodes, "{m:?}");
    drop(held);
    seen.extend(server_pids(&proxy));
    sigterm_leaves_nothing(proxy, seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_and_get_streams_are_bounded_too() {
    let _turn = TURN.lock().await;
    become_subreaper().unwrap();
    let keep_alive = Duration::from_secs(3);
    let sse_idle = Duration::from_secs(3);
    let proxy = start(&[
        "--mode",
        "session",
        "--pool-size",
        "6",
        "--min-idle",
        "1",
        "--stop-timeout",
        "1s",
        "--keep-alive-timeout",
        "3s",
        "--header-read-timeout",
        "3s",
        "--sse-idle-timeout",
        "3s",
        "--max-get-streams",
        "2",
    ]);
    proxy
        .wait_metrics("a warm process", |m| m.get("stdiopool_pool_idle") >= 1.0)
        .await;
    let before = settled_fds(&proxy).await;
    let mut seen = server_pids(&proxy);

    // Completed requests, then idle on keep-alive (responses left unread).
    let request: &'static [u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let held = flood(proxy.addr, FLOOD, request).await;
    assert!(
        held.len() >= FLOOD * 9 / 10,
        "only {} connected",
        held.len()
    );

    // A flood of GET streams from three sessions: two streams at most.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(Arc::new(Mcp::connect(&proxy).await));
    }
    let mut opens = tokio::task::JoinSet::new();
    for n in 0..30 {
        let mcp = sessions[n % 3].clone();
        opens.spawn(async move {
            let req = mcp
                .request(Method::GET)
                .header("accept", "text/event-stream");
            tokio::time::timeout(CALL_BOUND, req.try_open()).await
        });
    }
    let mut streams = Vec::new();
    let mut refused = Vec::new();
    while let Some(r) = opens.join_next().await {
        match r.unwrap() {
            Ok(Ok(open)) if open.status == StatusCode::OK => streams.push(open.sse()),
            Ok(Ok(open)) => refused.push(open.status),
            other => panic!("a GET stream got no answer: {other:?}"),
        }
    }
    assert_eq!(streams.len(), 2, "refused: {refused:?}");
    assert!(
        refused.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the third session is over the stream cap: {refused:?}"
    );
    assert!(
        refused
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE || *s == StatusCode::CONFLICT),
        "{refused:?}"
    );
    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_get_streams_open"), 2.0, "{m:?}");
    assert_eq!(m.get("stdiopool_get_stream_limit"), 2.0, "{m:?}");
    seen.extend(server_pids(&proxy));

    assert_eq!(ops(&proxy, "/healthz").await, Some(StatusCode::OK));
    assert_eq!(ops(&proxy, "/readyz").await, Some(StatusCode::OK));

    let spawned_before = proxy.metrics().await.get("stdiopool_process_spawned_total");
    let killed = Killed::default();
    let last_pid = Arc::new(std::sync::Mutex::new(None));
    let kill_at = killer(CALLS / 3, proxy.pid(), last_pid.clone(), killed.clone());
    let proxy = Arc::new(proxy);
    let calls = well_behaved_client(&proxy, last_pid, kill_at).await;
    let proxy = Arc::try_unwrap(proxy).expect("the client's tasks are done");
    assert!(
        calls.answered * 100 >= CALLS * 99,
        "answered {} of {CALLS}: {:?}",
        calls.answered,
        calls.failures
    );
    // Session mode: the killed process's session ends (404), the client
    // re-initializes and a live process serves it; the pool spawns anew.
    let (victim, _) = killed
        .lock()
        .unwrap()
        .clone()
        .expect("a process was killed");
    assert!(
        calls
            .pids
            .iter()
            .any(|(i, pid)| *i > CALLS / 3 && *pid != victim),
        "no process served after {victim} was killed: {:?}",
        calls.pids
    );
    let m = proxy
        .wait_metrics("a process spawned after the kill", |m| {
            m.get("stdiopool_process_spawned_total") > spawned_before
        })
        .await;
    assert_eq!(
        m.get("stdiopool_accept_errors_total"),
        0.0,
        "no EMFILE: {m:?}"
    );
    assert!(
        m.get("stdiopool_connection_limit_reached_total") >= 1.0,
        "{m:?}"
    );
    seen.extend(server_pids(&proxy));

    // Silent GET streams end after their idle bound and free their slots.
    let ended = proxy
        .wait_metrics("the idle GET streams ended", |m| {
            m.get("stdiopool_get_streams_open") == 0.0
        })
        .await;
    assert!(ended.get("stdiopool_get_streams_open") == 0.0, "{ended:?}");
    for mut stream in streams {
        assert_eq!(stream.next().await, None, "an idle GET stream ends");
    }

    // The idle keep-alive flood, still held open here, is closed by the proxy.
    let flood_ended = Instant::now();
    let back = wait_until(keep_alive.max(sse_idle) + SLACK, || {
        open_fds(proxy.pid()) <= before + FD_TOLERANCE
    })
    .await;
    assert!(
        back,
        "fds {} after {:?}, {before} before the flood",
        open_fds(proxy.pid()),
        flood_ended.elapsed()
    );
    let m = proxy.metrics().await;
    assert!(
        m.get("stdiopool_connections_keep_alive_timeouts_total")
            + m.get("stdiopool_connections_evicted_total")
            >= (FLOOD as f64) * 0.9,
        "{m:?}"
    );
    drop(held);
    drop(sessions);
    seen.extend(server_pids(&proxy));
    sigterm_leaves_nothing(proxy, seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_past_its_deadline_is_refused_and_its_connection_closed() {
    use tokio::io::AsyncReadExt;
    let proxy = ProxyProcess::start(&["--body-read-timeout", "1s"], &[]);
    let mut conn = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAccept: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\"",
        proxy.path,
        proxy.addr,
        e2e_support::ACCEPT_BOTH
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // The rest of the body never comes: the proxy answers and closes (EOF).
    tokio::time::timeout(e2e_support::LIMIT, conn.read_to_end(&mut answer))
        .await
        .expect("the connection was not closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "after {:?}: {answer}",
        started.elapsed()
    );
    assert!(answer.contains("1s"), "the error names the bound: {answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_fd_limit_is_raised_to_the_hard_one_at_start() {
    let args = fixture_args(&["--pool-size", "1"], &[]);
    let proxy = ProxyProcess::launch_via(&["prlimit", "--nofile=256:1024"], &args)
        .unwrap_or_else(|f| panic!("did not start ({}):\n{}", f.status, f.stderr));
    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_fd_limit"), 1024.0, "{m:?}");
    assert!(
        m.get("stdiopool_connection_limit") > 256.0,
        "the budget is made from the raised limit: {m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_response_is_disconnected_after_the_send_bound() {
    // One process; a reply far larger than the socket buffers, never read.
    let proxy = ProxyProcess::start(
        &[
            "--pool-size",
            "1",
            "--min-idle",
            "1",
            "--max-frame",
            "64MiB",
            "--send-timeout",
            "2s",
            "--wait-timeout",
            "15s",
        ],
        &[],
    );
    let mcp = Mcp::connect(&proxy).await;
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "huge", "arguments": {"bytes": 32 << 20}},
    })
    .to_string();
    let mut reader = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAccept: {}\r\nContent-Type: application/json\r\nMcp-Session-Id: {}\r\nMCP-Protocol-Version: {}\r\nContent-Length: {}\r\n\r\n{body}",
        proxy.path,
        proxy.addr,
        e2e_support::ACCEPT_BOTH,
        mcp.session,
        e2e_support::PROTOCOL_VERSION,
        body.len()
    );
    reader.write_all(head.as_bytes()).await.unwrap();
    // The reply stalls in the socket buffers; the send bound closes the
    // connection (and frees what the unsent reply holds).
    let m = proxy
        .wait_metrics("the stalled connection closed by the send bound", |m| {
            m.get("stdiopool_connections_send_timeouts_total") >= 1.0
        })
        .await;
    assert_eq!(
        m.get("stdiopool_connections_send_timeouts_total"),
        1.0,
        "{m:?}"
    );
    // The process is free for the next call.
    assert!(tokio::time::timeout(CALL_BOUND, mcp.pid()).await.unwrap() > 0);
    drop(reader);
}
