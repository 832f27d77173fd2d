//! The transport checks that refuse a request (docs/PROXY.md, "Checks, in
//! order"): body, `Accept`, `Content-Type`, size, token, `Host`/`Origin`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::stream;

use super::harness::*;

#[tokio::test]
async fn body_that_is_not_json_is_400_parse_error() {
    let (app, hits) = app(&[], true);
    for body in ["not json", "{", ""] {
        let a = send(&app, good_post().body(Body::from(body)).unwrap()).await;
        a.assert_refused(StatusCode::BAD_REQUEST, -32700);
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn json_that_is_not_json_rpc_is_400_invalid_request() {
    let (app, hits) = app(&[], true);
    for body in [
        r#"{"hello":"world"}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"initialize"}"#,
        "17",
    ] {
        let a = send(&app, good_post().body(Body::from(body)).unwrap()).await;
        a.assert_refused(StatusCode::BAD_REQUEST, -32600);
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn post_without_both_accept_types_is_406_naming_the_header() {
    let (app, hits) = app(&[], true);
    for accept in [
        None,
        Some("application/json"),
        Some("text/event-stream"),
        Some("text/html"),
    ] {
        let mut req = good_post();
        req.headers_mut().unwrap().remove(header::ACCEPT);
        if let Some(v) = accept {
            req = req.header(header::ACCEPT, v);
        }
        let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
        a.assert_refused(StatusCode::NOT_ACCEPTABLE, -32000);
        assert!(a.message().contains("Accept"), "{}", a.message());
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn post_with_wrong_content_type_is_415_naming_the_header() {
    let (app, hits) = app(&[], true);
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = good_post();
        req.headers_mut().unwrap().remove(header::CONTENT_TYPE);
        if let Some(v) = ct {
            req = req.header(header::CONTENT_TYPE, v);
        }
        let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
        a.assert_refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, -32000);
        assert!(a.message().contains("Content-Type"), "{}", a.message());
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn body_over_the_limit_is_413_whether_declared_or_streamed() {
    let (app, hits) = app(&[], true);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"pad":"{}"}}}}"#,
        "x".repeat(MAX_BODY)
    );
    // Declared length.
    let a = send(
        &app,
        good_post()
            .header(header::CONTENT_LENGTH, big.len())
            .body(Body::from(big.clone()))
            .unwrap(),
    )
    .await;
    a.assert_refused(StatusCode::PAYLOAD_TOO_LARGE, -32000);
    // Chunked: no length, the limit is found while reading.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let a = send(
        &app,
        good_post()
            .body(Body::from_stream(stream::iter(chunks)))
            .unwrap(),
    )
    .await;
    a.assert_refused(StatusCode::PAYLOAD_TOO_LARGE, -32000);
    assert_eq!(hits.get(), 0);
    // Exactly at the limit is fine.
    let pad = MAX_BODY - INIT.len() + r#"{}"#.len() - r#"{"pad":""}"#.len();
    let at_limit = INIT.replace(
        r#""capabilities":{}"#,
        &format!(r#""capabilities":{{"pad":"{}"}}"#, "y".repeat(pad)),
    );
    assert_eq!(at_limit.len(), MAX_BODY);
    let a = send(
        &app,
        good_post().body(Body::from(at_limit.clone())).unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_bearer_challenge() {
    let (app, hits) = app(&[], true);
    let mut req = good_post();
    req.headers_mut().unwrap().remove(header::AUTHORIZATION);
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    a.assert_refused(StatusCode::UNAUTHORIZED, -32000);
    assert!(
        a.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    for bad in [
        "Bearer wrong",
        "Bearer test-token-12",
        "Basic dGVzdA==",
        TOKEN,
    ] {
        let mut req = good_post();
        req.headers_mut()
            .unwrap()
            .insert(header::AUTHORIZATION, bad.parse().unwrap());
        let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
        a.assert_refused(StatusCode::UNAUTHORIZED, -32000);
        assert!(
            a.headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    // Every method of the endpoint is protected, not only POST.
    let get = Request::get("/mcp")
        .header(header::HOST, "localhost")
        .header(header::ACCEPT, "text/event-stream")
        .header(SESSION_ID_HEADER, session_header())
        .body(Body::empty())
        .unwrap();
    send(&app, get)
        .await
        .assert_refused(StatusCode::UNAUTHORIZED, -32000);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn ops_endpoints_need_no_token() {
    let (app, hits) = app(&[], true);
    let a = send(
        &app,
        Request::get("/healthz")
            .header(header::HOST, "localhost")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn foreign_origin_is_403() {
    let (app, hits) = app(&[], true);
    for origin in [
        "http://evil.example.com",
        "null",
        "https://localhost.evil.com",
    ] {
        let req = good_post().header(header::ORIGIN, origin);
        let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
        a.assert_refused(StatusCode::FORBIDDEN, -32000);
    }
    // Origin is checked before the token: a rebinding page learns nothing about auth.
    let mut req = good_post().header(header::ORIGIN, "http://evil.example.com");
    req.headers_mut().unwrap().remove(header::AUTHORIZATION);
    send(&app, req.body(Body::from(INIT)).unwrap())
        .await
        .assert_refused(StatusCode::FORBIDDEN, -32000);
    assert_eq!(hits.get(), 0);
    // A loopback origin passes.
    let req = good_post().header(header::ORIGIN, "http://localhost:6274");
    assert_eq!(
        send(&app, req.body(Body::from(INIT)).unwrap()).await.status,
        StatusCode::OK
    );
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn dns_rebinding_scenario_of_the_conformance_suite() {
    // POST initialize with Host and Origin of a rebound name must be 4xx;
    // with the real loopback host it must be 2xx.
    let (app, hits) = app(&[], true);
    let mut req = good_post();
    req.headers_mut()
        .unwrap()
        .insert(header::HOST, "evil.example.com".parse().unwrap());
    let req = req.header(header::ORIGIN, "http://evil.example.com");
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    a.assert_refused(StatusCode::FORBIDDEN, -32000);
    assert_eq!(hits.get(), 0);
    let a = send(&app, good_post().body(Body::from(INIT)).unwrap()).await;
    assert!(a.status.is_success());
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn configured_origin_is_allowed() {
    let (app, hits) = app(&["--allowed-origin", "https://app.example.com"], true);
    let req = good_post().header(header::ORIGIN, "https://app.example.com");
    assert_eq!(
        send(&app, req.body(Body::from(INIT)).unwrap()).await.status,
        StatusCode::OK
    );
    let req = good_post().header(header::ORIGIN, "https://other.example.com");
    send(&app, req.body(Body::from(INIT)).unwrap())
        .await
        .assert_refused(StatusCode::FORBIDDEN, -32000);
    assert_eq!(hits.get(), 1);
}
