//! Properties of the transport checks over arbitrary input: nothing panics,
//! and every refusal is the documented kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::proxy::transport::error::ProxyError;
use crate::proxy::transport::message::{IncomingMessage, MessageKind};
use crate::proxy::transport::negotiate::{check_content_type, check_get_accept, check_post_accept};
use crate::proxy::transport::origin::OriginGuard;
use crate::proxy::transport::protocol_version;
use crate::proxy::transport::session_id::SessionId;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("2.0".to_owned()),
            Just("initialize".to_owned()),
            ".{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("jsonrpc".to_owned()),
                        Just("id".to_owned()),
                        Just("method".to_owned()),
                        Just("params".to_owned()),
                        Just("result".to_owned()),
                        Just("error".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn header_text() -> impl Strategy<Value = String> {
    // Visible ASCII plus space and tab: what a header value may hold.
    "[ -~\t]{0,60}"
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_message_parser(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        match IncomingMessage::parse(&bytes) {
            Ok(m) => prop_assert_eq!(m.expects_response(), matches!(m.kind, MessageKind::Request { .. })),
            Err(ProxyError::Parse(_) | ProxyError::InvalidRequest(_)) => {}
            Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
        }
    }

    #[test]
    fn valid_json_is_never_a_parse_error(v in json_value()) {
        let text = serde_json::to_vec(&v).unwrap();
        match IncomingMessage::parse(&text) {
            Ok(m) => {
                let value = m.message.to_value();
                prop_assert_eq!(value.get("jsonrpc").and_then(Value::as_str), Some("2.0"));
            }
            Err(ProxyError::InvalidRequest(_)) => {}
            Err(other) => prop_assert!(false, "valid JSON refused as {other:?}"),
        }
    }

    #[test]
    fn arbitrary_header_values_never_panic_the_checks(
        accept in header_text(),
        content_type in header_text(),
        origin in header_text(),
        host in header_text(),
        session in header_text(),
        version in header_text(),
    ) {
        let mut h = HeaderMap::new();
        for (name, value) in [
            (header::ACCEPT, &accept),
            (header::CONTENT_TYPE, &content_type),
            (header::ORIGIN, &origin),
            (header::HOST, &host),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&session) {
            h.insert("mcp-session-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&version) {
            h.insert("mcp-protocol-version", v);
        }
        let _ = check_post_accept(&h);
        let _ = check_get_accept(&h);
        let _ = check_content_type(&h);
        let guard = OriginGuard::new("127.0.0.1:8080".parse().unwrap(), &[], &[]);
        if let Err(e) = guard.check(&h, &Uri::from_static("/mcp")) {
            prop_assert!(matches!(e, ProxyError::ForbiddenHost(_) | ProxyError::ForbiddenOrigin(_)));
        }
        match SessionId::from_headers(&h) {
            Ok(Some(id)) => prop_assert_eq!(id.to_string(), session.trim().to_ascii_lowercase()),
            Ok(None) | Err(ProxyError::SessionNotFound) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
        match protocol_version::from_headers(&h) {
            Ok(v) => prop_assert!(h.get("mcp-protocol-version").is_none() || version.trim() == v.as_str()),
            Err(e) => prop_assert!(matches!(e, ProxyError::UnsupportedProtocolVersion(_))),
        }
    }
}
