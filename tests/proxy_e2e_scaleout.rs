//! End to end, several instances side by side (docs/DEPLOY.md): pooled-mode
//! session ids signed with a shared key work on every instance and forged,
//! tampered or foreign-key ones are refused like unknown ones; session-mode
//! ids name their owner, and a request that reaches another instance is
//! refused with a 404 saying which; the key never shows in logs or metrics;
//! the key file is checked at start-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use e2e_support::{ACCEPT_BOTH, Mcp, PROTOCOL_VERSION, ProxyProcess, Reply, Req, TempFile};
use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "scaleout-e2e-shared-key-0123456789-abcdefghij";
const OTHER_KEY: &str = "another-deployment-key-0123456789-abcdefghij";

fn key_file(tag: &str, key: &str) -> TempFile {
    let file = TempFile::new(tag);
    std::fs::write(&file.0, format!("{key}\n")).unwrap();
    file
}

fn instance(mode: &str, id: &str, key: Option<&TempFile>) -> ProxyProcess {
    let mut opts = vec!["--mode", mode, "--pool-size", "2", "--instance-id", id];
    opts.extend(["--log-filter", "debug"]);
    if let Some(k) = key {
        opts.extend(["--session-key-file", k.path()]);
    }
    ProxyProcess::start(&opts, &[])
}

/// A request of `session` sent to `proxy` (which may not be the one that minted it).
fn req_on(proxy: &ProxyProcess, method: Method, session: &str) -> Req {
    Req::new(proxy.addr, method, &proxy.path)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL_VERSION)
}

async fn call_on(proxy: &ProxyProcess, session: &str, id: u64, message: &str) -> Reply {
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": message}},
    });
    req_on(proxy, Method::POST, session)
        .body(body.to_string())
        .send()
        .await
}

fn echoed(reply: &Reply) -> Value {
    reply.response()["result"]["content"][0]["text"].clone()
}

/// Replaces one character of `text` at `at` by another base64url character.
fn flip(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn signed_pooled_ids_work_on_every_instance_with_the_key_and_nowhere_else() {
    let key = key_file("scaleout-key", KEY);
    let other = key_file("scaleout-other-key", OTHER_KEY);
    let a = instance("pooled", "web-a", Some(&key));
    let b = instance("pooled", "web-b", Some(&key));
    let foreign = instance("pooled", "web-a", Some(&other));

    let session = Mcp::connect(&a).await.session;
    let parts: Vec<&str> = session.split('.').collect();
    assert_eq!(parts.len(), 3, "a signed id: {session}");
    assert_eq!(parts[0], "web-a");
    assert!(session.bytes().all(|c| (0x21..=0x7e).contains(&c)));

    // Any instance with the key serves it, and never saw its initialize.
    for (i, proxy) in [&b, &a, &b].into_iter().enumerate() {
        let reply = call_on(proxy, &session, 10 + i as u64, "hi").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(echoed(&reply), "hi");
    }

    // Unknown, tampered (payload or MAC), re-owned, and foreign-key ids:
    // all the same 404 as an id nobody issued.
    let unknown = call_on(&b, "web-b.00000000000000000000000000000000", 1, "x").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let (payload, mac) = (parts[1], parts[2]);
    let tampered = [
        format!("web-a.{}.{mac}", flip(payload, 2)),
        format!("web-a.{payload}.{}", flip(mac, 5)),
        format!("web-b.{payload}.{mac}"),
        format!("web-a.{payload}.{}", &mac[..mac.len() - 1]),
    ];
    for bad in &tampered {
        let reply = call_on(&b, bad, 2, "x").await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{bad}: {}",
            reply.text()
        );
        assert_eq!(reply.json(), unknown.json(), "{bad}: same body as unknown");
    }
    let reply = call_on(&foreign, &session, 3, "x").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert_eq!(
        reply.json(),
        unknown.json(),
        "foreign key: same body as unknown"
    );

    // DELETE on an instance that did not mint it: nothing to free, 200; that
    // instance answers 404 for it from then on (DELETE included), while the
    // others, which cannot know, still serve it (docs/DEPLOY.md, "Limits").
    let refused = req_on(&foreign, Method::DELETE, &session).send().await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let deleted = req_on(&b, Method::DELETE, &session).send().await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text());
    let after = call_on(&b, &session, 20, "x").await;
    assert_eq!(after.status, StatusCode::NOT_FOUND, "{}", after.text());
    assert_eq!(after.json(), unknown.json());
    let again = req_on(&b, Method::DELETE, &session).send().await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let elsewhere = call_on(&a, &session, 21, "still").await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text());
    assert_eq!(echoed(&elsewhere), "still");

    // The key is in no log line (debug level) and no metric.
    for proxy in [&a, &b, &foreign] {
        let metrics = Req::new(proxy.addr, Method::GET, "/metrics")
            .send()
            .await
            .text();
        for secret in [KEY, OTHER_KEY, &KEY[..16], &OTHER_KEY[..16]] {
            assert!(!proxy.stderr().contains(secret), "key in the log");
            assert!(!metrics.contains(secret), "key in the metrics");
        }
    }
}

#[tokio::test]
async fn signed_ids_carry_the_relayed_capabilities() {
    let key = key_file("scaleout-caps-key", KEY);
    let a = instance("pooled", "web-a", Some(&key));
    let with = Mcp::connect_with(&a, json!({"sampling": {}}), None)
        .await
        .session;
    let without = Mcp::connect(&a).await.session;
    assert_ne!(with.split('.').nth(1), without.split('.').nth(1));
    let payload = |id: &str| {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id.split('.').nth(1).unwrap())
            .unwrap();
        serde_json::from_slice::<Value>(&raw).unwrap()
    };
    assert_eq!(payload(&with)["c"], json!({"sampling": {}}));
    assert_eq!(payload(&with)["v"], PROTOCOL_VERSION);
    assert_eq!(payload(&without)["c"], json!({}));
}

#[tokio::test]
async fn session_ids_name_their_instance_and_misrouted_requests_name_the_owner() {
    for mode in ["session", "pooled"] {
        let a = instance(mode, "web-a", None);
        let b = instance(mode, "web-b", None);
        let mcp = Mcp::connect(&a).await;
        let (owner, random) = mcp.session.split_once('.').unwrap();
        assert_eq!(owner, "web-a", "{mode}");
        assert_eq!(random.len(), 32, "{mode}");

        for method in [Method::POST, Method::DELETE] {
            let req = req_on(&b, method.clone(), &mcp.session);
            let reply = if method == Method::POST {
                req.body(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string())
                    .send()
                    .await
            } else {
                req.send().await
            };
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{mode} {method}");
            assert_eq!(reply.error_code(), -32005, "{mode} {method}");
            let message = reply.error_message();
            assert!(
                message.contains("\"web-a\"") && message.contains("\"web-b\""),
                "{mode} {method}: {message}"
            );
            assert!(
                !message.contains(random),
                "{mode}: the message must not echo the whole id: {message}"
            );
        }
        // Its owner still serves it, and ends it.
        let response = mcp.call_tool("echo", json!({"message": "home"})).await;
        assert_eq!(response["result"]["content"][0]["text"], "home");
        assert_eq!(mcp.delete().await.status, StatusCode::OK, "{mode}");
    }
}

#[tokio::test]
async fn the_session_key_file_is_checked_at_start_up() {
    let short = key_file("scaleout-short-key", "too-short");
    let missing = TempFile::new("scaleout-missing-key");
    let good = key_file("scaleout-good-key", KEY);
    let cases = [
        (vec!["--session-key-file", short.path()], "at least 32"),
        (
            vec!["--session-key-file", missing.path()],
            "cannot read session key file",
        ),
        (
            vec!["--mode", "session", "--session-key-file", good.path()],
            "for pooled mode",
        ),
        (vec!["--instance-id", "a.b"], "invalid instance id"),
    ];
    for (opts, expected) in cases {
        let args = e2e_support::fixture_args(&opts, &[]);
        match ProxyProcess::launch(&args) {
            Ok(_) => panic!("{opts:?}: started"),
            Err(failure) => {
                assert!(!failure.status.success(), "{opts:?}");
                assert!(
                    failure.stderr.contains(expected),
                    "{opts:?}: {}",
                    failure.stderr
                );
                assert!(
                    !failure.stderr.contains(KEY),
                    "{opts:?}: the key in the error"
                );
            }
        }
    }
}

#[test]
fn the_scale_out_options_come_from_the_command_line_or_the_file_with_defaults_otherwise() {
    use stdiopool::config::Config;
    let dir = std::env::temp_dir().join(format!("stdiopool-scaleout-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("session.key"), format!("{KEY}\n")).unwrap();
    let origin = dir.join("stdiopool.toml");
    let file =
        "drain_delay = \"12s\"\ninstance_id = \"web-9\"\nsession_key_file = \"session.key\"\n";
    let from_file = Config::load_from_with_file(["stdiopool", "--demo"], file, &origin).unwrap();
    assert_eq!(from_file.drain_delay, std::time::Duration::from_secs(12));
    assert_eq!(from_file.instance_id.as_str(), "web-9");
    // Relative to the file, read and trimmed; shown by length only.
    let key = from_file.session_key.as_ref().unwrap();
    assert_eq!(key.expose(), KEY.as_bytes());
    assert!(!format!("{from_file:?}").contains(KEY));

    let cli = Config::load_from_with_file(
        [
            "stdiopool",
            "--demo",
            "--drain-delay",
            "0",
            "--instance-id",
            "web-1",
        ],
        file,
        &origin,
    )
    .unwrap();
    assert_eq!(cli.drain_delay, std::time::Duration::ZERO);
    assert_eq!(cli.instance_id.as_str(), "web-1");

    let defaults = Config::load_from(["stdiopool", "--demo"]).unwrap();
    assert_eq!(defaults.drain_delay, std::time::Duration::from_secs(5));
    assert!(defaults.session_key.is_none());
    assert!(!defaults.instance_id.as_str().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
