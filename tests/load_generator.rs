//! The load generator of `benches/run.sh` (`stdiopool-load`) against the real
//! proxy and fixture: it must get every reply right in both modes, and it must
//! fail when a server answers wrongly, so a benchmark can never report the
//! speed of wrong answers. No timing is asserted: only counts and exit status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const LOAD: &str = env!("CARGO_BIN_EXE_stdiopool-load");
const PROXY: &str = env!("CARGO_BIN_EXE_stdiopool");
const FIXTURE: &str = env!("CARGO_BIN_EXE_stdiopool-fixture");
const LIMIT: Duration = Duration::from_secs(60);

/// A running proxy on a free loopback port; stopped (SIGTERM, then SIGKILL) on drop.
struct Proxy {
    child: Child,
    url: String,
}

impl Proxy {
    fn start(args: &[&str]) -> Proxy {
        let mut child = Command::new(PROXY)
            .args(["--demo", "--listen", "127.0.0.1:0", "--log-filter", "warn"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the proxy");
        // The banner names the bound address; reading it also waits for readiness.
        let stdout = child.stdout.take().expect("stdout");
        let mut url = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the banner");
            if let Some(rest) = line.strip_prefix("connect an MCP client to: ") {
                url = Some(rest.trim().to_owned());
                break;
            }
        }
        let url = url.expect("the proxy printed its URL");
        Proxy { child, url }
    }

    /// The HTTP floor of the benchmark (`stdiopool-load floor`), stopped the
    /// same way; `extra` makes it the pipe floor (`--processes N -- CMD`).
    fn floor(extra: &[&str]) -> Proxy {
        let mut child = Command::new(LOAD)
            .args(["floor", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the floor");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().expect("a banner").expect("read the banner");
        let addr = line
            .strip_prefix("listening on ")
            .expect("the floor printed its address")
            .trim()
            .to_owned();
        Proxy {
            child,
            url: format!("http://{addr}/mcp"),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_out(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("stdiopool-load-{}-{name}.json", std::process::id()))
}

fn run_load(args: &[&str]) -> Output {
    Command::new(LOAD)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run stdiopool-load")
}

fn read_report(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).expect("the JSON report was written");
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).expect("the report is JSON")
}

#[test]
fn pooled_mode_every_reply_is_checked_and_right() {
    let proxy = Proxy::start(&["--pool-size", "2"]);
    let out = json_out("pooled");
    let res = run_load(&[
        "http",
        "--url",
        &proxy.url,
        "--concurrency",
        "8",
        "--requests",
        "400",
        "--warmup",
        "16",
        "--duration",
        "60s",
        "--json-out",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let report = read_report(&out);
    assert_eq!(report["ok"], 400);
    assert_eq!(report["errors"], 0);
    // Every reply was parsed (JSON or SSE, whichever the proxy chose).
    assert_eq!(
        report["replies_json"].as_u64().unwrap() + report["replies_sse"].as_u64().unwrap(),
        400
    );
    assert_eq!(report["sessions_opened"], 1);
}

#[test]
fn modern_era_calls_are_checked_and_open_no_session() {
    let proxy = Proxy::start(&["--pool-size", "2"]);
    let out = json_out("modern");
    let res = run_load(&[
        "http",
        "--url",
        &proxy.url,
        "--era",
        "modern",
        "--concurrency",
        "4",
        "--requests",
        "200",
        "--duration",
        "60s",
        "--json-out",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let report = read_report(&out);
    assert_eq!(report["ok"], 200);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["sessions_opened"], 0);
    // No progress token, no log level: the proxy answers a modern call in JSON.
    assert_eq!(report["replies_json"], 200);
}

#[test]
fn session_mode_each_client_gets_its_session_and_sse_replies() {
    let proxy = Proxy::start(&["--mode", "session", "--pool-size", "4"]);
    let out = json_out("session");
    let res = run_load(&[
        "http",
        "--url",
        &proxy.url,
        "--sessions",
        "per-client",
        "--concurrency",
        "4",
        "--requests",
        "200",
        "--duration",
        "60s",
        "--json-out",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let report = read_report(&out);
    assert_eq!(report["ok"], 200);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["sessions_opened"], 4);
    assert_eq!(
        report["replies_json"].as_u64().unwrap() + report["replies_sse"].as_u64().unwrap(),
        200
    );
}

#[test]
fn stdio_mode_pipelines_requests_to_the_fixture() {
    let out = json_out("stdio");
    let res = run_load(&[
        "stdio",
        "--concurrency",
        "16",
        "--requests",
        "1000",
        "--json-out",
        out.to_str().unwrap(),
        "--",
        FIXTURE,
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let report = read_report(&out);
    assert_eq!(report["ok"], 1000);
    assert_eq!(report["errors"], 0);
}

/// A stdio "server" that completes the handshake but echoes the wrong text.
const LIAR: &str = r#"
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')
  [ -z "$id" ] && continue
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"liar","version":"0"}}}\n' "$id" ;;
    *) printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"not your message"}]}}\n' "$id" ;;
  esac
done
"#;

#[test]
fn wrong_echo_content_fails_the_run() {
    let res = run_load(&[
        "stdio",
        "--requests",
        "5",
        "--timeout",
        "20s",
        "--",
        "sh",
        "-c",
        LIAR,
    ]);
    assert!(!res.status.success(), "a lying server must fail the run");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("5 wrong or failed"), "{stderr}");
    assert!(stderr.contains("not your message"), "{stderr}");
}

#[test]
fn a_server_that_never_starts_fails_the_run() {
    let res = run_load(&[
        "stdio",
        "--requests",
        "5",
        "--timeout",
        "20s",
        "--",
        FIXTURE,
        "--exit-at-start",
        "3",
    ]);
    assert!(!res.status.success());
}

/// 200 echo calls at concurrency 4 against a floor; the load generator's
/// report, after checking that the run passed.
fn load_floor(floor: &Proxy, name: &str) -> Value {
    let out = json_out(name);
    let res = run_load(&[
        "http",
        "--url",
        &floor.url,
        "--concurrency",
        "4",
        "--requests",
        "200",
        "--duration",
        "60s",
        "--json-out",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    read_report(&out)
}

#[test]
fn the_http_floor_answers_the_workload_as_json_and_passes_every_check() {
    let floor = Proxy::floor(&[]);
    let report = load_floor(&floor, "floor");
    assert_eq!(report["ok"], 200);
    assert_eq!(report["errors"], 0);
    // From memory, one JSON body each: never a stream.
    assert_eq!(report["replies_json"], 200);
    assert_eq!(report["sessions_opened"], 1);
}

/// The children of `pid` (from /proc), for the pipe floor's processes.
fn children_of(pid: u32) -> Vec<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("read the children");
    text.split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Whether `pid` has ended (gone, or a zombie waiting for whoever inherited it).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn the_pipe_floor_forwards_the_workload_to_its_processes_and_stops_them() {
    let floor = Proxy::floor(&["--processes", "2", "--", FIXTURE]);
    let report = load_floor(&floor, "pipe-floor");
    // Every echo came back right from a fixture (checked by the load
    // generator), one JSON body each.
    assert_eq!(report["ok"], 200);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["replies_json"], 200);
    let children = children_of(floor.child.id());
    assert_eq!(children.len(), 2, "{children:?}");
    drop(floor);
    let deadline = Instant::now() + LIMIT;
    while !children.iter().all(|&c| ended(c)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        children.iter().all(|&c| ended(c)),
        "the pipe floor's processes outlived it: {children:?}"
    );
}
