//! Content negotiation: what a POST or GET must accept, and what a POST must
//! carry.
//!
//! Invariant: a POST reaches a handler only if its `Accept` admits both
//! `application/json` and `text/event-stream` (so either reply form is
//! allowed) and its `Content-Type` is `application/json`; a GET only if its
//! `Accept` admits `text/event-stream`.
//!
//! Leniency, decided here: wildcards count (`*/*`, `application/*`,
//! `text/*`), as HTTP defines them, and `q=0` excludes; parameters such as
//! `charset` are allowed on `Content-Type`. A missing `Accept` is refused (the
//! MCP specification says the client MUST list both), as the TS SDK does.

use axum::http::{HeaderMap, header};

use super::error::ProxyError;

/// `application/json`.
pub const JSON: &str = "application/json";
/// `text/event-stream`.
pub const EVENT_STREAM: &str = "text/event-stream";

/// How a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFormat {
    /// One JSON object, `Content-Type: application/json`.
    Json,
    /// An SSE stream that may carry related messages before the response.
    Sse,
}

impl ReplyFormat {
    /// The form a POSTed request is answered in: SSE when the exchange may
    /// carry messages besides the response (progress, server requests),
    /// plain JSON otherwise. Both are allowed once [`check_post_accept`] passed.
    pub fn for_request(may_carry_related_messages: bool) -> ReplyFormat {
        if may_carry_related_messages {
            ReplyFormat::Sse
        } else {
            ReplyFormat::Json
        }
    }
}

/// The quality the `Accept` headers give `media` (`None` when nothing matches).
fn accepted_quality(headers: &HeaderMap, media: &str) -> Option<f32> {
    let (ty, sub) = media.split_once('/')?;
    // (specificity, q) of the most specific matching range.
    let mut best: Option<(u8, f32)> = None;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(text) = value.to_str() else { continue };
        for range in text.split(',') {
            let mut parts = range.split(';');
            let Some((rt, rs)) = parts.next().and_then(|m| m.trim().split_once('/')) else {
                continue;
            };
            let specificity = if rt.eq_ignore_ascii_case(ty) && rs.eq_ignore_ascii_case(sub) {
                3
            } else if rt.eq_ignore_ascii_case(ty) && rs == "*" {
                2
            } else if rt == "*" && rs == "*" {
                1
            } else {
                continue;
            };
            let q = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, q));
            }
        }
    }
    best.map(|(_, q)| q)
}

/// Whether the `Accept` headers admit `media` (with a quality above zero).
pub fn accepts(headers: &HeaderMap, media: &str) -> bool {
    accepted_quality(headers, media).is_some_and(|q| q > 0.0)
}

/// A POST must accept both `application/json` and `text/event-stream` (406).
pub fn check_post_accept(headers: &HeaderMap) -> Result<(), ProxyError> {
    if accepts(headers, JSON) && accepts(headers, EVENT_STREAM) {
        Ok(())
    } else {
        Err(ProxyError::NotAcceptable {
            need: "both application/json and text/event-stream",
        })
    }
}

/// A GET must accept `text/event-stream` (406).
pub fn check_get_accept(headers: &HeaderMap) -> Result<(), ProxyError> {
    if accepts(headers, EVENT_STREAM) {
        Ok(())
    } else {
        Err(ProxyError::NotAcceptable {
            need: "text/event-stream",
        })
    }
}

/// A POST body must be declared `application/json`, parameters allowed (415).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ProxyError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(JSON));
    if is_json {
        Ok(())
    } else {
        Err(ProxyError::UnsupportedMediaType)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn h(name: header::HeaderName, values: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append(name.clone(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn post_accept_needs_both_types() {
        let ok = |v: &[&str]| check_post_accept(&h(header::ACCEPT, v)).is_ok();
        assert!(ok(&["application/json, text/event-stream"]));
        assert!(ok(&["text/event-stream", "application/json"]));
        assert!(ok(&["*/*"]));
        assert!(ok(&["application/*, text/*"]));
        assert!(ok(&["Application/JSON;q=0.9, TEXT/EVENT-STREAM"]));
        assert!(!ok(&[]));
        assert!(!ok(&["application/json"]));
        assert!(!ok(&["text/event-stream"]));
        assert!(!ok(&["text/html"]));
        assert!(!ok(&["*/*, application/json;q=0"]));
        assert!(!ok(&["application/json, text/event-stream;q=0"]));
    }

    #[test]
    fn get_accept_needs_event_stream() {
        assert!(check_get_accept(&h(header::ACCEPT, &["text/event-stream"])).is_ok());
        assert!(check_get_accept(&h(header::ACCEPT, &["application/json"])).is_err());
        assert!(check_get_accept(&HeaderMap::new()).is_err());
    }

    #[test]
    fn content_type_must_be_json_with_optional_params() {
        let ok = |v: &[&str]| check_content_type(&h(header::CONTENT_TYPE, v)).is_ok();
        assert!(ok(&["application/json"]));
        assert!(ok(&["application/json; charset=utf-8"]));
        assert!(ok(&["Application/Json"]));
        assert!(!ok(&[]));
        assert!(!ok(&["text/plain"]));
        assert!(!ok(&["application/jsonp"]));
    }

    #[test]
    fn not_acceptable_message_names_the_accept_header() {
        let err = check_post_accept(&HeaderMap::new()).unwrap_err();
        assert!(err.to_string().contains("Accept header"));
        let err = check_content_type(&HeaderMap::new()).unwrap_err();
        assert!(err.to_string().contains("Content-Type header"));
    }
}
