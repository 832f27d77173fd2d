//! Methods, protocol versions and session headers at the transport, the
//! requests that pass, and CORS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::IntoResponse;

use super::harness::*;

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let (app, hits) = app(&[], true);
    for method in [Method::PUT, Method::PATCH, Method::OPTIONS] {
        let req = Request::builder()
            .method(method.clone())
            .uri("/mcp")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let a = send(&app, req).await;
        a.assert_refused(StatusCode::METHOD_NOT_ALLOWED, -32000);
        assert_eq!(a.headers[header::ALLOW], "GET, POST, DELETE", "{method}");
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn a_mode_without_get_stream_answers_get_with_405() {
    let (app, hits) = app(&[], false);
    let req = Request::get("/mcp")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::ACCEPT, "text/event-stream")
        .header(SESSION_ID_HEADER, session_header())
        .body(Body::empty())
        .unwrap();
    let a = send(&app, req).await;
    a.assert_refused(StatusCode::METHOD_NOT_ALLOWED, -32000);
    assert_eq!(a.headers[header::ALLOW], "POST, DELETE");
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn unsupported_protocol_version_is_400() {
    let (app, hits) = app(&[], true);
    for version in ["2024-11-05", "2026-07-28", "garbage"] {
        let req = good_post()
            .header(SESSION_ID_HEADER, session_header())
            .header("mcp-protocol-version", version);
        let a = send(&app, req.body(Body::from(PING)).unwrap()).await;
        a.assert_refused(StatusCode::BAD_REQUEST, -32000);
        assert!(a.message().contains("protocol version"), "{}", a.message());
        // GET and DELETE validate it too.
        let get = Request::get("/mcp")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::ACCEPT, "text/event-stream")
            .header(SESSION_ID_HEADER, session_header())
            .header("mcp-protocol-version", version)
            .body(Body::empty())
            .unwrap();
        send(&app, get)
            .await
            .assert_refused(StatusCode::BAD_REQUEST, -32000);
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn absent_protocol_version_is_taken_as_2025_03_26() {
    let (app, hits) = app(&[], true);
    let req = good_post().header(SESSION_ID_HEADER, session_header());
    let a = send(&app, req.body(Body::from(PING)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["result"]["version"], "2025-03-26");
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn session_less_non_initialize_post_is_400_without_reaching_a_handler() {
    let (app, hits) = app(&[], true);
    for body in [
        PING,
        INITIALIZED,
        r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#,
    ] {
        let req = good_post().header("mcp-protocol-version", "2025-11-25");
        let a = send(&app, req.body(Body::from(body)).unwrap()).await;
        a.assert_refused(StatusCode::BAD_REQUEST, -32000);
        assert!(a.message().contains("Mcp-Session-Id"), "{}", a.message());
    }
    // Python's server/discover probe carries an unknown version: still a 4xx.
    let req = good_post().header("mcp-protocol-version", "2026-07-28");
    send(&app, req.body(Body::from(PING)).unwrap())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, -32000);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn malformed_session_id_is_404_session_not_found() {
    let (app, hits) = app(&[], true);
    for bad in [
        "nope",
        "../../etc/passwd",
        "0123456789abcdef0123456789abcdeg",
    ] {
        let req = good_post().header(SESSION_ID_HEADER, bad);
        let a = send(&app, req.body(Body::from(PING)).unwrap()).await;
        a.assert_refused(StatusCode::NOT_FOUND, -32005);
    }
    let del = Request::delete("/mcp")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(SESSION_ID_HEADER, "nope")
        .body(Body::empty())
        .unwrap();
    send(&app, del)
        .await
        .assert_refused(StatusCode::NOT_FOUND, -32005);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn get_and_delete_need_a_session_and_get_needs_event_stream() {
    let (app, hits) = app(&[], true);
    let base = || {
        Request::builder()
            .uri("/mcp")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
    };
    let get_no_session = base()
        .method(Method::GET)
        .header(header::ACCEPT, "text/event-stream");
    send(&app, get_no_session.body(Body::empty()).unwrap())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, -32000);
    let get_json_only = base()
        .method(Method::GET)
        .header(header::ACCEPT, "application/json")
        .header(SESSION_ID_HEADER, session_header());
    let a = send(&app, get_json_only.body(Body::empty()).unwrap()).await;
    a.assert_refused(StatusCode::NOT_ACCEPTABLE, -32000);
    assert!(a.message().contains("text/event-stream"));
    let delete_no_session = base().method(Method::DELETE);
    send(&app, delete_no_session.body(Body::empty()).unwrap())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, -32000);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn well_formed_requests_reach_the_handlers() {
    let (app, hits) = app(&[], true);
    // initialize: no session needed; the reply carries a fresh one.
    let a = send(&app, good_post().body(Body::from(INIT)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    let sid = a.headers[SESSION_ID_HEADER].to_str().unwrap().to_owned();
    assert!(SessionId::parse(&sid).is_ok());
    // notification with the session: 202, no body.
    let req = good_post()
        .header(SESSION_ID_HEADER, &sid)
        .header("mcp-protocol-version", "2025-11-25");
    let a = send(&app, req.body(Body::from(INITIALIZED)).unwrap()).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert!(a.body.is_empty());
    // request with the session and a supported version.
    let req = good_post()
        .header(SESSION_ID_HEADER, &sid)
        .header("mcp-protocol-version", "2025-06-18");
    let a = send(&app, req.body(Body::from(PING)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["result"]["version"], "2025-06-18");
    // GET stream and DELETE.
    let get = Request::get("/mcp")
        .header(header::HOST, "localhost:8080")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::ACCEPT, "text/event-stream")
        .header(SESSION_ID_HEADER, &sid)
        .body(Body::empty())
        .unwrap();
    let a = send(&app, get).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::CONTENT_TYPE], "text/event-stream");
    let del = Request::delete("/mcp")
        .header(header::HOST, "[::1]:8080")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(SESSION_ID_HEADER, &sid)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, del).await.status, StatusCode::OK);
    assert_eq!(hits.get(), 5);
}

#[tokio::test]
async fn pool_exhaustion_helper_is_503_with_retry_after() {
    let resp = crate::proxy::transport::error::ProxyError::PoolExhausted {
        waited: std::time::Duration::from_secs(5),
        retry_after: std::time::Duration::from_secs(2),
    }
    .into_response();
    let a = Answer {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap()
            .to_vec(),
    };
    a.assert_refused(StatusCode::SERVICE_UNAVAILABLE, -32000);
    assert_eq!(a.headers[header::RETRY_AFTER], "2");
}

#[tokio::test]
async fn listed_origins_get_cors_and_preflights_need_no_token() {
    let (app, hits) = app(&["--allowed-origin", "https://app.example.com"], true);
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::HOST, "localhost:8080")
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type, authorization, mcp-session-id, mcp-protocol-version",
        )
        .body(Body::empty())
        .unwrap();
    let a = send(&app, preflight).await;
    assert!(a.status.is_success(), "{}", a.status);
    assert_eq!(
        a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let allowed = a.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed.contains("mcp-session-id") && allowed.contains("authorization"),
        "{allowed}"
    );
    // A browser 2026-07-28 client sends the routing headers on every POST.
    assert!(
        allowed.contains("mcp-method") && allowed.contains("mcp-name"),
        "{allowed}"
    );

    let req = good_post().header(header::ORIGIN, "https://app.example.com");
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    assert!(
        a.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .contains("mcp-session-id")
    );
    // A loopback origin passes the guard but gets no CORS grant.
    let req = good_post().header(header::ORIGIN, "http://localhost:3000");
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn preflight_from_a_foreign_origin_is_403() {
    let (app, hits) = app(&["--allowed-origin", "https://app.example.com"], true);
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::HOST, "localhost:8080")
        .header(header::ORIGIN, "https://evil.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let a = send(&app, preflight).await;
    a.assert_refused(StatusCode::FORBIDDEN, -32000);
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn without_listed_origins_there_is_no_cors() {
    let (app, _hits) = app(&[], true);
    let req = good_post().header(header::ORIGIN, "http://localhost:3000");
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}
