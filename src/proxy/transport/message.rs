//! The one JSON-RPC message a POST carries: parsed and classified before any
//! child sees it.
//!
//! Invariant: only a single JSON object that is a well-formed JSON-RPC 2.0
//! request, notification or response passes. Everything else is refused here
//! (400, -32700 for non-JSON, -32600 for non-JSON-RPC), because a stdio server
//! silently drops such input and the HTTP request would otherwise hang. Batches (JSON arrays) are refused: Streamable HTTP carries
//! one message per POST since 2025-06-18, and no supported client batches.
//! Classification is `crate::jsonrpc`'s, the same the upstream side uses.

use serde_json::Value;
use serde_json::value::RawValue;

use super::error::ProxyError;
use crate::jsonrpc::{Id, Message};

/// A JSON-RPC id: a string or an integer, never null, kept exactly as sent.
pub type RequestId = Id;

/// What the message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// Has `method` and `id`: expects a response.
    Request {
        /// The request id.
        id: RequestId,
        /// The method name.
        method: String,
    },
    /// Has `method` and no `id`.
    Notification {
        /// The method name.
        method: String,
    },
    /// Has `result` or `error` and an `id`: answers a server-to-client request.
    Response {
        /// The id of the request it answers.
        id: RequestId,
    },
}

/// A validated JSON-RPC message from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    /// What it is.
    pub kind: MessageKind,
    /// The message itself.
    pub message: Message,
}

/// A request's or notification's top level, each member left as its text.
/// Unknown members, a repeated member and anything else unusual fail the
/// decode, and the body takes the full path.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainRequest<'a> {
    #[serde(borrow)]
    jsonrpc: &'a RawValue,
    // `Option<&RawValue>` alone would read `null` as absent: `"id": null`
    // (refused) would pass as a notification, `"params": null` (refused)
    // as no params.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: &'a RawValue,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

/// A member that is there, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// The fast path of [`IncomingMessage::parse`], for the message nearly every
/// POST carries: a request or notification with nothing but `jsonrpc`,
/// `id`, `method` and `params`. Its top level is decoded without a tree (the
/// `Value` tree of the whole body cost a map, a string per key and a pass of
/// `jsonrpc::Message::from_value` per request); `params` is still parsed into
/// the `Value` the handlers use.
///
/// Invariant: it returns a message only where the full path returns the same
/// one (a proptest holds the two together), and `None` for anything else —
/// any refusal, and anything it is unsure of — which then takes the full
/// path, so every error and its wording stay the full path's. Unsure means:
/// not an object at the top (serde would read an array as a struct), an
/// unknown or repeated member, `jsonrpc` spelled other than `"2.0"`, a null
/// or invalid id, a method that is not a string, params neither object nor
/// array, and a body with 64 or more `[`/`{` (nesting that deep could reach
/// serde_json's recursion limit on one path and not the other: `params` is
/// one level deeper in the tree).
fn parse_plain_request(body: &[u8]) -> Option<IncomingMessage> {
    const MAX_OPENERS: usize = 64;
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{')
        || body.iter().filter(|&&b| b == b'[' || b == b'{').count() >= MAX_OPENERS
    {
        return None;
    }
    let top: PlainRequest<'_> = serde_json::from_slice(body).ok()?;
    if top.jsonrpc.get() != "\"2.0\"" {
        return None;
    }
    let method: String = serde_json::from_str(top.method.get()).ok()?;
    let params = match top.params {
        None => None,
        Some(raw) => match serde_json::from_str::<Value>(raw.get()).ok()? {
            p @ (Value::Object(_) | Value::Array(_)) => Some(p),
            _ => return None,
        },
    };
    let Some(id) = top.id else {
        return Some(IncomingMessage {
            kind: MessageKind::Notification {
                method: method.clone(),
            },
            message: Message::Notification { method, params },
        });
    };
    let id = Id::from_value(serde_json::from_str(id.get()).ok()?).ok()?;
    Some(IncomingMessage {
        kind: MessageKind::Request {
            id: id.clone(),
            method: method.clone(),
        },
        message: Message::Request { id, method, params },
    })
}

/// Whether the fast path and the full path agree on `body`: the fast path
/// answers only where the full path gives the same message. For the
/// `request` fuzz target and the proptest below.
#[doc(hidden)]
pub fn request_check_agreement(body: &[u8]) -> Result<(), String> {
    let Some(fast) = parse_plain_request(body) else {
        return Ok(());
    };
    match IncomingMessage::parse_tree(body) {
        Ok(full) if full == fast => Ok(()),
        Ok(full) => Err(format!(
            "the fast path read {fast:?}, the full path {full:?}"
        )),
        Err(e) => Err(format!(
            "the fast path accepted {fast:?}, the full path refused it: {e}"
        )),
    }
}

impl IncomingMessage {
    /// Parses a POST body.
    pub fn parse(body: &[u8]) -> Result<IncomingMessage, ProxyError> {
        if let Some(request) = parse_plain_request(body) {
            return Ok(request);
        }
        IncomingMessage::parse_tree(body)
    }

    /// The full path: the body as a `Value` tree, classified by
    /// `crate::jsonrpc`; every refusal and its wording come from here.
    fn parse_tree(body: &[u8]) -> Result<IncomingMessage, ProxyError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ProxyError::Parse(format!("the body is not valid JSON ({e})")))?;
        let message =
            Message::from_value(value).map_err(|e| ProxyError::InvalidRequest(e.to_string()))?;
        let kind = match &message {
            Message::Request { id, method, .. } => MessageKind::Request {
                id: id.clone(),
                method: method.clone(),
            },
            Message::Notification { method, .. } => MessageKind::Notification {
                method: method.clone(),
            },
            Message::Response { id, .. } | Message::ErrorResponse { id: Some(id), .. } => {
                MessageKind::Response { id: id.clone() }
            }
            Message::ErrorResponse { id: None, .. } => {
                return Err(ProxyError::InvalidRequest(
                    "a response must carry the \"id\" of the request it answers".into(),
                ));
            }
        };
        Ok(IncomingMessage { kind, message })
    }

    /// The method name of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            MessageKind::Request { method, .. } | MessageKind::Notification { method } => {
                Some(method)
            }
            MessageKind::Response { .. } => None,
        }
    }

    /// Whether this is the `initialize` request.
    pub fn is_initialize(&self) -> bool {
        matches!(&self.kind, MessageKind::Request { method, .. } if method == "initialize")
    }

    /// Whether the client expects a response body (a request), as opposed to
    /// 202 Accepted (a notification or a response). The handlers match on
    /// the kind itself; the transport tests use this to answer like a server.
    #[cfg(test)]
    pub fn expects_response(&self) -> bool {
        matches!(self.kind, MessageKind::Request { .. })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::strategy::Strategy;

    fn kind(s: &str) -> Result<MessageKind, ProxyError> {
        IncomingMessage::parse(s.as_bytes()).map(|m| m.kind)
    }

    #[test]
    fn the_three_message_kinds_are_recognised() {
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(MessageKind::Request { method, .. }) if method == "ping"
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{}}"#),
            Ok(MessageKind::Request { id: Id::String(s), .. }) if s == "a"
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(MessageKind::Notification { .. })
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":0,"result":{}}"#),
            Ok(MessageKind::Response { .. })
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":0,"error":{"code":-1,"message":"x"}}"#),
            Ok(MessageKind::Response { .. })
        ));
    }

    #[test]
    fn big_integer_ids_keep_their_digits() {
        let m = IncomingMessage::parse(
            br#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"}"#,
        )
        .unwrap();
        let MessageKind::Request { id, .. } = m.kind else {
            panic!()
        };
        assert_eq!(id.to_value().to_string(), "18446744073709551615");
        let m = IncomingMessage::parse(
            br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#,
        )
        .unwrap();
        let MessageKind::Request { id, .. } = m.kind else {
            panic!()
        };
        assert_eq!(id.to_value().to_string(), "123456789012345678901234567890");
    }

    #[test]
    fn non_json_is_a_parse_error() {
        for body in ["", "{", "not json", "{\"jsonrpc\":\"2.0\",}"] {
            assert!(matches!(kind(body), Err(ProxyError::Parse(_))), "{body:?}");
        }
    }

    #[test]
    fn json_that_is_not_json_rpc_is_an_invalid_request() {
        for body in [
            "[]",
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            "42",
            "{}",
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":"bad"}"#,
        ] {
            assert!(
                matches!(kind(body), Err(ProxyError::InvalidRequest(_))),
                "{body}"
            );
        }
    }

    /// A JSON value for the proptest: small, of every kind, sometimes deep.
    fn json_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("1".to_owned()),
            Just("-0".to_owned()),
            Just("1.5".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("\"2.0\"".to_owned()),
            Just("\"x\\u0041\"".to_owned()),
            Just("\"\\ud800\"".to_owned()),
            Just("\"tools/call\"".to_owned()),
        ];
        leaf.prop_recursive(70, 200, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(("[a-c_]{1,2}", inner), 0..3).prop_map(|v| {
                    let members: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    /// A value that fits `key` (or nearly: the refused variants are here
    /// too), `pick` choosing which.
    fn plausible(key: &str, pick: usize) -> String {
        let choices: &[&str] = match key {
            "jsonrpc" => &["\"2.0\"", "\"2.0\"", "\"1.0\"", "2"],
            "id" => &["1", "\"a\"", "null", "1.5", "{}", "-7"],
            "method" => &["\"tools/call\"", "\"ping\"", "7", "null"],
            "params" => &["{}", "[]", "null", "{\"a\":[1]}", "3", "\"s\""],
            "result" => &["{}", "null"],
            "error" => &["{\"code\":1,\"message\":\"m\"}"],
            _ => &["1"],
        };
        choices[pick % choices.len()].to_owned()
    }

    /// One member `key`, present most of the time, with a value that
    /// mostly fits it.
    fn member(
        key: &'static str,
        present: f64,
    ) -> impl proptest::strategy::Strategy<Value = Option<(&'static str, String)>> {
        use proptest::prelude::*;
        proptest::option::weighted(
            present,
            (proptest::bool::weighted(0.8), 0..6usize, json_value()).prop_map(
                move |(fits, pick, any)| (key, if fits { plausible(key, pick) } else { any }),
            ),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 3000,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Bodies near a plain request: its four members, each mostly there
        /// with a value that mostly fits (the refused variants among them),
        /// sometimes a member it may not have or a repeated one, in any
        /// order, spaced or not, sometimes in a batch. Wherever the fast path
        /// answers, the full path gives the same message.
        #[test]
        fn the_fast_path_agrees_with_the_full_path(
            members in (
                member("jsonrpc", 0.9),
                member("id", 0.8),
                member("method", 0.9),
                member("params", 0.6),
                proptest::option::weighted(
                    0.2,
                    (proptest::sample::select(vec!["result", "error", "extra", "id", "method"]), 0..6usize)
                        .prop_map(|(k, pick)| (k, plausible(k, pick))),
                ),
            )
                .prop_map(|(a, b, c, d, e)| [a, b, c, d, e].into_iter().flatten().collect::<Vec<_>>())
                .prop_shuffle(),
            spaced in proptest::bool::ANY,
            wrap in 0..4u8,
        ) {
            let sep = if spaced { " , " } else { "," };
            let object = format!(
                "{{{}}}",
                members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(sep)
            );
            let body = match wrap {
                0 | 1 => object,
                2 => format!(" \n{object}\t"),
                _ => format!("[{object}]"),
            };
            if let Err(why) = request_check_agreement(body.as_bytes()) {
                proptest::prop_assert!(false, "{}: {}", body, why);
            }
        }
    }

    #[test]
    fn the_fast_path_takes_plain_requests_and_leaves_the_rest() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#,
            r#"{"method":"ping","id":"a","jsonrpc":"2.0"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"x","params":[1,2]}"#,
        ] {
            let fast = parse_plain_request(body.as_bytes());
            assert!(fast.is_some(), "{body}");
            assert_eq!(
                fast,
                IncomingMessage::parse_tree(body.as_bytes()).ok(),
                "{body}"
            );
        }
        for body in [
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            // serde would read this array as the struct's members in order.
            r#"["2.0",1,"ping"]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2\u002e0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
        ] {
            assert!(parse_plain_request(body.as_bytes()).is_none(), "{body}");
        }
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{}1{}}}"#,
            "[".repeat(70),
            "]".repeat(70)
        );
        assert!(parse_plain_request(deep.as_bytes()).is_none());
    }

    #[test]
    fn initialize_is_detected() {
        let m = IncomingMessage::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
        )
        .unwrap();
        assert!(m.is_initialize());
        assert!(m.expects_response());
        let n = IncomingMessage::parse(br#"{"jsonrpc":"2.0","method":"initialize"}"#).unwrap();
        assert!(!n.is_initialize());
    }
}
