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

/// The quality the `Accept` headers give each of `media` (`None` where
/// nothing matches), in one pass over the headers: every request is checked,
/// so the ranges are read once for all the types asked about, byte by byte
/// (the `&str` splitting this replaced cost ~3k instructions per type).
fn accepted_qualities<const N: usize>(headers: &HeaderMap, media: [&str; N]) -> [Option<f32>; N] {
    let wanted = media.map(|m| m.split_once('/'));
    // (specificity, q) of the most specific matching range, per type.
    let mut best: [Option<(u8, f32)>; N] = [None; N];
    for value in headers.get_all(header::ACCEPT) {
        // Visible ASCII only, as `HeaderValue::to_str` admits.
        let Ok(text) = value.to_str() else { continue };
        for range in text.as_bytes().split(|&b| b == b',') {
            let mut parts = range.split(|&b| b == b';');
            let Some((rt, rs)) = parts.next().and_then(|m| split_once(m.trim_ascii(), b'/')) else {
                continue;
            };
            let mut q = None;
            for (i, want) in wanted.iter().enumerate() {
                let Some((ty, sub)) = want else { continue };
                let (ty, sub) = (ty.as_bytes(), sub.as_bytes());
                let specificity = if rt.eq_ignore_ascii_case(ty) && rs.eq_ignore_ascii_case(sub) {
                    3
                } else if rt.eq_ignore_ascii_case(ty) && rs == b"*" {
                    2
                } else if rt == b"*" && rs == b"*" {
                    1
                } else {
                    continue;
                };
                if best[i].is_none_or(|(s, _)| specificity > s) {
                    let q = *q.get_or_insert_with(|| quality(parts.clone()));
                    best[i] = Some((specificity, q));
                }
            }
        }
    }
    best.map(|b| b.map(|(_, q)| q))
}

/// A range's `q` parameter (1 when absent or unreadable).
fn quality<'a>(params: impl Iterator<Item = &'a [u8]>) -> f32 {
    params
        .filter_map(|p| split_once(p.trim_ascii(), b'='))
        .find(|(k, _)| k.trim_ascii().eq_ignore_ascii_case(b"q"))
        .and_then(|(_, v)| {
            std::str::from_utf8(v.trim_ascii())
                .ok()?
                .parse::<f32>()
                .ok()
        })
        .unwrap_or(1.0)
}

fn split_once(bytes: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == at)?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

/// Whether the `Accept` headers admit each of `media` (a quality above zero).
fn accepts_all<const N: usize>(headers: &HeaderMap, media: [&str; N]) -> bool {
    accepted_qualities(headers, media)
        .iter()
        .all(|q| q.is_some_and(|q| q > 0.0))
}

/// Whether the `Accept` headers admit `media` (with a quality above zero).
pub fn accepts(headers: &HeaderMap, media: &str) -> bool {
    accepts_all(headers, [media])
}

/// A POST must accept both `application/json` and `text/event-stream` (406).
pub fn check_post_accept(headers: &HeaderMap) -> Result<(), ProxyError> {
    if accepts_all(headers, [JSON, EVENT_STREAM]) {
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

    /// The `&str` version this module had before the single pass: the
    /// reference the proptest below holds the byte parser to.
    fn reference_quality(headers: &HeaderMap, media: &str) -> Option<f32> {
        let (ty, sub) = media.split_once('/')?;
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Accept headers made of the pieces that matter (types, wildcards,
        /// case, spaces, parameters, q values, empty ranges): the one-pass
        /// parser gives every type the quality the reference gives it.
        #[test]
        fn one_pass_agrees_with_the_reference(
            values in proptest::collection::vec(
                "((application|text|Application|TEXT|\\*|x)/(json|event-stream|JSON|\\*|html)|[a-z/* ]{0,4})( ?; ?(q|Q|charset|level) ?= ?(0|1|0\\.5|0\\.000|x|utf-8))*( ?, ?)?",
                0..4,
            )
        ) {
            let headers = h(header::ACCEPT, &values.iter().map(String::as_str).collect::<Vec<_>>());
            let [json, sse] = accepted_qualities(&headers, [JSON, EVENT_STREAM]);
            proptest::prop_assert_eq!(json, reference_quality(&headers, JSON));
            proptest::prop_assert_eq!(sse, reference_quality(&headers, EVENT_STREAM));
            proptest::prop_assert_eq!(
                check_post_accept(&headers).is_ok(),
                json.is_some_and(|q| q > 0.0) && sse.is_some_and(|q| q > 0.0)
            );
        }
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
