//! Many servers from one config file, end to end: the real binary serving
//! several fixture servers at `/servers/<name>/mcp`, `GET /servers`,
//! per-server readiness, a server whose command cannot start (503 while the
//! others serve), the `server` metrics label, and reload on SIGHUP (added
//! servers start, removed ones drain and stop, untouched ones keep their
//! processes and sessions, an invalid file changes nothing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use e2e_support::*;
use hyper::http::{Method, StatusCode};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// A Claude-style file serving the fixture under each name (`--name` makes
/// each server's processes tell which entry they belong to), plus `extra`
/// raw entries.
fn servers_json(names: &[&str], extra: &str) -> String {
    let mut entries: Vec<String> = names
        .iter()
        .map(|n| format!(r#""{n}": {{"command": "{FIXTURE}", "args": ["--name", "{n}"]}}"#))
        .collect();
    if !extra.is_empty() {
        entries.push(extra.to_owned());
    }
    format!(r#"{{"mcpServers": {{{}}}}}"#, entries.join(", "))
}

fn start(file: &TempFile) -> ProxyProcess {
    let args: Vec<String> = [
        "--pool-size",
        "2",
        "--min-idle",
        "1",
        "--config",
        file.path(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    match ProxyProcess::launch(&args) {
        Ok(p) => p,
        Err(f) => panic!(
            "stdiopool did not start ({}):\n{}{}",
            f.status, f.stdout, f.stderr
        ),
    }
}

async fn listing(proxy: &ProxyProcess) -> Value {
    let reply = Req::new(proxy.addr, Method::GET, "/servers").send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

fn names(listing: &Value) -> Vec<String> {
    listing["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn entry<'a>(listing: &'a Value, name: &str) -> &'a Value {
    listing["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {listing}"))
}

/// The proxy's descendants that run the server listed as `name` (each
/// entry runs the fixture with `--name <name>`).
fn pids_of(proxy: &ProxyProcess, name: &str) -> Vec<u32> {
    descendants(proxy.pid())
        .iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{}/cmdline", p.pid)).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.windows(2)
                    .any(|w| w[0] == b"--name" && w[1] == name.as_bytes())
            })
        })
        .map(|p| p.pid)
        .collect()
}

async fn status_of(proxy: &ProxyProcess, path: &str) -> StatusCode {
    Req::new(proxy.addr, Method::GET, path).send().await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_server_has_its_route_and_a_broken_one_is_refused_with_503() {
    let file = TempFile::new("servers-routes.json");
    std::fs::write(
        file.path(),
        servers_json(
            &["alpha", "beta"],
            r#""broken": {"command": "/nonexistent/stdiopool-test-server"}"#,
        ),
    )
    .unwrap();
    let proxy = start(&file);

    let list = listing(&proxy).await;
    assert_eq!(names(&list), ["alpha", "beta", "broken"]);
    let alpha = entry(&list, "alpha");
    assert_eq!(alpha["state"], "ready");
    assert_eq!(alpha["mode"], "pooled");
    assert_eq!(
        alpha["urls"]["mcp"],
        format!("http://{}/servers/alpha/mcp", proxy.addr)
    );
    assert_eq!(alpha["pool"]["max"], 2);
    let broken = entry(&list, "broken");
    assert_eq!(broken["state"], "failed");
    assert!(
        broken["reason"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/stdiopool-test-server"),
        "{broken}"
    );

    // Each route reaches its own server's processes.
    for name in ["alpha", "beta"] {
        let mcp = Mcp::connect_path(&proxy, &format!("/servers/{name}/mcp")).await;
        let response = mcp.call_tool("echo", json!({"message": name})).await;
        assert_eq!(result_text(&response), name);
    }
    let reply = proxy.post(initialize_body(0, json!({})).to_string());
    // `proxy.path` is the listing; POSTing MCP there is not a route.
    assert_ne!(reply.send().await.status, StatusCode::OK);

    let refused = Req::new(proxy.addr, Method::POST, "/servers/broken/mcp")
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(initialize_body(0, json!({})).to_string())
        .send()
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server \"broken\" is not running"),
        "{}",
        refused.text()
    );
    assert!(refused.header("retry-after").is_some());

    assert_eq!(
        status_of(&proxy, "/servers/alpha/readyz").await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&proxy, "/servers/broken/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status_of(&proxy, "/servers/nosuch/readyz").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&proxy, "/servers/nosuch/mcp").await,
        StatusCode::NOT_FOUND
    );
    // One broken server does not take the others out of service.
    assert_eq!(status_of(&proxy, "/readyz").await, StatusCode::OK);

    let m = proxy.metrics().await;
    for name in ["alpha", "beta"] {
        assert_eq!(
            m.get(&format!(
                "stdiopool_server_requests_total{{server=\"{name}\",method=\"tools/call\",outcome=\"ok\"}}"
            )),
            1.0,
            "{m:?}"
        );
        assert_eq!(
            m.get(&format!("stdiopool_server_up{{server=\"{name}\"}}")),
            1.0
        );
    }
    assert_eq!(m.get("stdiopool_server_up{server=\"broken\"}"), 0.0);
    assert_eq!(
        m.requests("tools/call", "ok"),
        2.0,
        "the totals count every server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_servers_while_an_untouched_one_serves_a_load() {
    let file = TempFile::new("servers-reload.json");
    std::fs::write(file.path(), servers_json(&["steady", "leaving"], "")).unwrap();
    let proxy = start(&file);

    let steady = Arc::new(Mcp::connect_path(&proxy, "/servers/steady/mcp").await);
    let steady_pid = steady.pid().await;
    let leaving = Mcp::connect_path(&proxy, "/servers/leaving/mcp").await;
    let leaving_pids = pids_of(&proxy, "leaving");
    assert!(
        !leaving_pids.is_empty(),
        "the leaving server runs a process"
    );
    assert!(leaving_pids.contains(&leaving.pid().await));

    // A load on the untouched server for the whole reload.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (steady, stop, ok, failed) = (steady.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            // Bounded in count as well as by the stop flag.
            for _ in 0..100_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let id = steady.next_id();
                match steady
                    .tool_req(id, "echo", json!({"message": "x"}))
                    .try_send()
                    .await
                {
                    Ok(reply)
                        if reply.status == StatusCode::OK
                            && reply.response()["result"].is_object() =>
                    {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => {
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("{}: {}", reply.status, reply.text()))
                    }
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
        }));
    }
    // A slow call in flight on the server about to be removed must finish.
    let slow = tokio::spawn({
        let req = leaving.tool_req(9_999, "sleep", json!({"ms": 1500}));
        async move { req.try_send().await }
    });
    assert!(
        wait_until(LIMIT, || ok.load(Ordering::Relaxed) >= 20).await,
        "the load runs"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    std::fs::write(file.path(), servers_json(&["steady", "arriving"], "")).unwrap();
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log("configuration reloaded").await;

    let list = listing(&proxy).await;
    assert_eq!(names(&list), ["arriving", "steady"]);
    assert_eq!(entry(&list, "arriving")["state"], "ready");
    let arriving = Mcp::connect_path(&proxy, "/servers/arriving/mcp").await;
    assert_eq!(
        result_text(&arriving.call_tool("echo", json!({"message": "hi"})).await),
        "hi"
    );
    assert_eq!(
        status_of(&proxy, "/servers/leaving/readyz").await,
        StatusCode::NOT_FOUND
    );

    let slow = slow
        .await
        .unwrap()
        .expect("the in-flight call on the removed server");
    assert_eq!(slow.status, StatusCode::OK, "{}", slow.text());
    assert!(slow.response()["result"].is_object(), "{}", slow.text());

    // Every process of the removed server is stopped and reaped.
    for pid in &leaving_pids {
        assert!(
            wait_gone(*pid).await,
            "process {pid} of the removed server is left"
        );
    }
    let count_before = ok.load(Ordering::Relaxed);
    assert!(
        wait_until(LIMIT, || ok.load(Ordering::Relaxed) >= count_before + 20).await,
        "the load goes on after the reload"
    );
    stop.store(true, Ordering::Release);
    for task in load {
        task.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "requests lost on the untouched server: {failed:?}"
    );
    // Untouched: the same session and the same warm process.
    let steady_pids = pids_of(&proxy, "steady");
    assert!(steady_pids.contains(&steady_pid), "{steady_pids:?}");
    assert!(steady_pids.contains(&steady.pid().await), "{steady_pids:?}");
    let still = descendants(proxy.pid());
    assert!(
        still.iter().all(|p| !leaving_pids.contains(&p.pid)),
        "{still:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_on_sighup_changes_nothing_and_a_changed_server_is_replaced() {
    let file = TempFile::new("servers-invalid.json");
    std::fs::write(file.path(), servers_json(&["one", "two"], "")).unwrap();
    let proxy = start(&file);
    let one = Mcp::connect_path(&proxy, "/servers/one/mcp").await;
    let one_pid = one.pid().await;
    let two = Mcp::connect_path(&proxy, "/servers/two/mcp").await;
    let two_pid = two.pid().await;

    std::fs::write(
        file.path(),
        servers_json(&["one"], r#""two": {"url": "https://example.com/mcp"}"#),
    )
    .unwrap();
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log("reload refused").await;
    assert!(
        proxy
            .stderr()
            .contains("server \\\"two\\\", key \\\"url\\\"")
            || proxy.stderr().contains("server \"two\", key \"url\""),
        "{}",
        proxy.stderr()
    );
    assert_eq!(names(&listing(&proxy).await), ["one", "two"]);
    assert_eq!(one.pid().await, one_pid);
    assert_eq!(two.pid().await, two_pid);

    // `two` changes (an environment variable): replaced; `one` is kept.
    std::fs::write(
        file.path(),
        servers_json(
            &["one"],
            &format!(r#""two": {{"command": "{FIXTURE}", "args": ["--name", "two"], "env": {{"V": "2"}}}}"#),
        ),
    )
    .unwrap();
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log("configuration reloaded").await;
    assert_eq!(
        one.pid().await,
        one_pid,
        "an untouched server keeps its process and session"
    );
    // The old session belonged to the replaced server.
    let reply = two.call_tool_reply("pid", json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    let two_again = Mcp::connect_path(&proxy, "/servers/two/mcp").await;
    assert_ne!(two_again.pid().await, two_pid);
    assert!(
        wait_gone(two_pid).await,
        "the replaced server's process is stopped"
    );
    // Regression (merging the drain delay with server lists): stopping a
    // replaced server must not mark the whole proxy draining.
    assert_eq!(status_of(&proxy, "/readyz").await, StatusCode::OK);
    assert_eq!(
        status_of(&proxy, "/servers/one/readyz").await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_drain_delay_turns_every_readyz_to_503_while_every_server_serves() {
    let file = TempFile::new("servers-drain.json");
    std::fs::write(file.path(), servers_json(&["one", "two"], "")).unwrap();
    let args: Vec<String> = ["--drain-delay", "60s", "--config", file.path()]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut proxy = ProxyProcess::launch(&args).unwrap_or_else(|f| panic!("{}", f.stderr));
    let one = Mcp::connect_path(&proxy, "/servers/one/mcp").await;
    assert_eq!(status_of(&proxy, "/readyz").await, StatusCode::OK);

    proxy.signal(Signal::SIGTERM);
    let mut status = StatusCode::OK;
    for _ in 0..500 {
        status = status_of(&proxy, "/readyz").await;
        if status != StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    for name in ["one", "two"] {
        assert_eq!(
            status_of(&proxy, &format!("/servers/{name}/readyz")).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "{name}"
        );
    }
    // Still serving, on an old session and a new one.
    assert_eq!(
        result_text(&one.call_tool("echo", json!({"message": "old"})).await),
        "old"
    );
    let two = Mcp::connect_path(&proxy, "/servers/two/mcp").await;
    assert_eq!(
        result_text(&two.call_tool("echo", json!({"message": "new"})).await),
        "new"
    );

    let pids = [one.pid().await, two.pid().await];
    // A second SIGTERM cuts the delay short: the proxy drains and exits.
    proxy.signal(Signal::SIGTERM);
    let exit = proxy.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "{exit}\n{}", proxy.stderr());
    for pid in pids {
        assert!(wait_gone(pid).await, "server process {pid} stopped");
    }
}

/// The next SSE event with data on `body` (its whole text), bounded by [`LIMIT`].
async fn next_event(body: &mut hyper::body::Incoming, text: &mut String) -> String {
    use http_body_util::BodyExt as _;
    loop {
        if let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if event.contains("data:") {
                return event;
            }
            continue;
        }
        let frame = tokio::time::timeout(LIMIT, body.frame())
            .await
            .expect("no event within the limit")
            .expect("the stream ended")
            .unwrap();
        if let Ok(bytes) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_sse_transport_is_served_under_each_server_route() {
    let file = TempFile::new("servers-legacy.json");
    std::fs::write(file.path(), servers_json(&["alpha", "beta"], "")).unwrap();
    let proxy = start(&file);
    for name in ["alpha", "beta"] {
        let mut open = Req::new(proxy.addr, Method::GET, &format!("/servers/{name}/sse"))
            .header("accept", "text/event-stream")
            .open()
            .await;
        assert_eq!(open.status, StatusCode::OK, "{name}");
        let mut text = String::new();
        let endpoint_event = next_event(&mut open.body, &mut text).await;
        assert!(
            endpoint_event.starts_with("event: endpoint"),
            "{endpoint_event}"
        );
        let endpoint = endpoint_event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap()
            .to_owned();
        assert!(
            endpoint.starts_with(&format!("/servers/{name}/messages?")),
            "{endpoint}"
        );
        let posted = Req::new(proxy.addr, Method::POST, &endpoint)
            .header("content-type", "application/json")
            .body(initialize_body(7, json!({})).to_string())
            .send()
            .await;
        assert_eq!(posted.status, StatusCode::ACCEPTED, "{}", posted.text());
        let answer = next_event(&mut open.body, &mut text).await;
        let data = answer
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        let message: Value = serde_json::from_str(data).unwrap();
        assert_eq!(message["id"], 7, "{message}");
        assert!(message["result"]["serverInfo"].is_object(), "{message}");
    }
    let m = proxy.metrics().await;
    assert!(
        m.0.keys()
            .any(|k| k.starts_with("stdiopool_server_requests_total{server=\"beta\"")),
        "legacy requests are counted under their server: {m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_server_of_a_toml_list_keeps_its_own_mode_and_pool() {
    let file = TempFile::new("servers-modes.toml");
    std::fs::write(
        file.path(),
        format!(
            r#"
[servers.stateful]
command = "{FIXTURE}"
args = ["--name", "stateful"]
mode = "session"
pool_size = 3
min_idle = 0

[servers.shared]
command = ["{FIXTURE}", "--name", "shared"]
pool_size = 1
"#
        ),
    )
    .unwrap();
    let proxy = start(&file);
    let list = listing(&proxy).await;
    assert_eq!(entry(&list, "stateful")["mode"], "session");
    assert_eq!(entry(&list, "stateful")["pool"]["max"], 3);
    assert_eq!(entry(&list, "shared")["mode"], "pooled");
    assert_eq!(entry(&list, "shared")["pool"]["max"], 1);

    // Session mode: each session owns a process of that server's pool.
    let a = Mcp::connect_path(&proxy, "/servers/stateful/mcp").await;
    let b = Mcp::connect_path(&proxy, "/servers/stateful/mcp").await;
    let (pa, pb) = (a.pid().await, b.pid().await);
    assert_ne!(pa, pb, "two sessions, two processes");
    assert_eq!(a.pid().await, pa, "a session keeps its process");
    // Pooled with one process: every session borrows the same one.
    let c = Mcp::connect_path(&proxy, "/servers/shared/mcp").await;
    let d = Mcp::connect_path(&proxy, "/servers/shared/mcp").await;
    assert_eq!(c.pid().await, d.pid().await);
    let stateful = pids_of(&proxy, "stateful");
    assert!(
        stateful.contains(&pa) && stateful.contains(&pb),
        "{stateful:?}"
    );
    assert_eq!(pids_of(&proxy, "shared").len(), 1);
}
