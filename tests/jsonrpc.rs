//! JSON-RPC classification, exact ids, error objects and codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use proptest::prelude::*;
use serde_json::{Value, json};
use stdiopool::jsonrpc::{
    ErrorObject, Id, InvalidMessage, Message, MessageKind, code, error_response, id_of, response,
};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn classifies_the_four_kinds_of_message() {
    let request =
        Message::from_value(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})).unwrap();
    assert_eq!(request.kind(), MessageKind::Request);
    assert_eq!(request.method(), Some("tools/list"));
    assert_eq!(request.id(), Some(&Id::from(1_i64)));

    let note =
        Message::from_value(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).unwrap();
    assert_eq!(
        note,
        Message::Notification {
            method: "notifications/initialized".into(),
            params: None
        }
    );
    assert_eq!(note.id(), None);

    let ok = Message::from_value(json!({"jsonrpc":"2.0","id":"a","result":{}})).unwrap();
    assert_eq!(
        ok,
        Message::Response {
            id: Id::from("a"),
            result: json!({})
        }
    );

    let err = Message::from_value(
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}),
    )
    .unwrap();
    assert_eq!(err.kind(), MessageKind::ErrorResponse);
    assert_eq!(err.id(), None);
}

#[test]
fn ids_round_trip_exactly_as_sent() {
    for text in [
        r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":-5,"method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":-98765432109876543210987654321,"method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":"","method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":"\u0000\n\"é💥","method":"m"}"#,
    ] {
        let original = parse(text);
        let message = Message::from_value(original.clone()).unwrap();
        let id = message.id().unwrap().clone();
        assert_eq!(message.into_value()["id"], original["id"]);
        let id_json = serde_json::to_string(&id).unwrap();
        assert_eq!(id_json, serde_json::to_string(&original["id"]).unwrap());
        assert_eq!(serde_json::from_str::<Id>(&id_json).unwrap(), id);
    }
    let big: Id = serde_json::from_str("123456789012345678901234567890").unwrap();
    assert_eq!(big.to_string(), "123456789012345678901234567890");
    assert_eq!(Id::from("1").to_string(), "\"1\"");
    assert_ne!(Id::from("1"), Id::from(1_i64));
}

#[test]
fn batches_are_rejected_saying_mcp_removed_them() {
    let err = Message::from_value(json!([{"jsonrpc":"2.0","id":1,"method":"ping"}])).unwrap_err();
    assert_eq!(err, InvalidMessage::Batch);
    assert!(err.to_string().contains("2025-06-18"), "{err}");
    assert_eq!(
        Message::from_value(json!([])).unwrap_err(),
        InvalidMessage::Batch
    );
}

#[test]
fn malformed_messages_are_rejected_with_a_reason() {
    let cases = [
        (json!("ping"), "must be a JSON object"),
        (json!(null), "must be a JSON object"),
        (json!({"id":1,"method":"m"}), "missing \"jsonrpc\""),
        (
            json!({"jsonrpc":"1.0","id":1,"method":"m"}),
            "must be \"2.0\"",
        ),
        (
            json!({"jsonrpc":2.0,"id":1,"method":"m"}),
            "must be \"2.0\"",
        ),
        (
            json!({"jsonrpc":"2.0","id":null,"method":"m"}),
            "must not be null",
        ),
        (
            json!({"jsonrpc":"2.0","id":null,"result":{}}),
            "must not be null",
        ),
        (
            json!({"jsonrpc":"2.0","id":1.5,"method":"m"}),
            "string or an integer",
        ),
        (
            parse(r#"{"jsonrpc":"2.0","id":1e3,"method":"m"}"#),
            "string or an integer",
        ),
        (
            parse(r#"{"jsonrpc":"2.0","id":1.0,"method":"m"}"#),
            "string or an integer",
        ),
        (
            json!({"jsonrpc":"2.0","id":true,"method":"m"}),
            "string or an integer",
        ),
        (
            json!({"jsonrpc":"2.0","id":{},"method":"m"}),
            "string or an integer",
        ),
        (
            json!({"jsonrpc":"2.0","id":[1],"method":"m"}),
            "string or an integer",
        ),
        (
            json!({"jsonrpc":"2.0","id":1,"method":7}),
            "\"method\" must be a string",
        ),
        (
            json!({"jsonrpc":"2.0","id":1,"method":"m","params":"x"}),
            "\"params\" must be",
        ),
        (
            json!({"jsonrpc":"2.0","id":1,"method":"m","params":null}),
            "\"params\" must be",
        ),
        (
            json!({"jsonrpc":"2.0","id":1,"method":"m","result":{}}),
            "must not also carry",
        ),
        (
            json!({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}),
            "not both",
        ),
        (
            json!({"jsonrpc":"2.0","id":1}),
            "no \"method\", \"result\" or \"error\"",
        ),
        (
            json!({"jsonrpc":"2.0","result":{}}),
            "must carry the \"id\"",
        ),
        (
            json!({"jsonrpc":"2.0","id":1,"error":"boom"}),
            "\"error\" must be an object",
        ),
        (
            json!({"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"x"}}),
            "\"code\"",
        ),
        (
            parse(
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":99999999999999999999,"message":"x"}}"#,
            ),
            "out of range",
        ),
        (
            json!({"jsonrpc":"2.0","id":1,"error":{"code":1}}),
            "\"message\" is missing",
        ),
    ];
    for (value, needle) in cases {
        let err = Message::from_value(value.clone()).expect_err(&value.to_string());
        assert!(
            err.to_string().contains(needle),
            "{value}: {err} lacks {needle:?}"
        );
    }
}

#[test]
fn error_response_may_omit_its_id_and_is_written_with_null() {
    let m = Message::from_value(json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"bad"}}))
        .unwrap();
    assert_eq!(m.id(), None);
    assert_eq!(m.into_value()["id"], Value::Null);
}

#[test]
fn error_response_helper_writes_a_complete_message() {
    let v = error_response(
        None,
        ErrorObject::parse_error("expected value at line 1 column 1"),
    );
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: expected value at line 1 column 1"}})
    );
    let id = Id::from(7_i64);
    let v = error_response(
        Some(&id),
        ErrorObject::upstream_closed("exit status 1").with_data(json!({"pid": 42})),
    );
    assert_eq!(v["id"], 7);
    assert_eq!(v["error"]["code"], code::UPSTREAM_CLOSED);
    assert_eq!(v["error"]["data"]["pid"], 42);
    assert_eq!(
        Message::from_value(v).unwrap().kind(),
        MessageKind::ErrorResponse
    );
    assert_eq!(response(&id, json!({}))["result"], json!({}));
}

#[test]
fn builders_use_their_documented_codes() {
    let cases = [
        (ErrorObject::parse_error("x"), -32700),
        (ErrorObject::invalid_request("x"), -32600),
        (ErrorObject::method_not_found("tools/lis"), -32601),
        (ErrorObject::invalid_params("x"), -32602),
        (ErrorObject::internal_error("x"), -32603),
        (ErrorObject::upstream_closed("x"), -32000),
        (ErrorObject::request_timeout("x"), -32001),
        (ErrorObject::upstream_unavailable("x"), -32003),
        (ErrorObject::upstream_protocol_error("x"), -32004),
        (ErrorObject::session_not_found("x"), -32005),
        (ErrorObject::from(InvalidMessage::Batch), -32600),
    ];
    for (error, expected) in cases {
        assert_eq!(error.code, expected, "{error}");
        assert!(error.data.is_none());
    }
    assert_eq!(
        ErrorObject::method_not_found("tools/lis").message,
        "Method not found: \"tools/lis\""
    );
}

#[test]
fn proxy_codes_are_distinct_in_the_server_range_and_avoid_mcp_codes() {
    let ours = [
        code::UPSTREAM_CLOSED,
        code::REQUEST_TIMEOUT,
        code::UPSTREAM_UNAVAILABLE,
        code::UPSTREAM_PROTOCOL_ERROR,
        code::SESSION_NOT_FOUND,
    ];
    let distinct: HashSet<i64> = ours.iter().copied().collect();
    assert_eq!(distinct.len(), ours.len());
    for c in ours {
        assert!((-32099..=-32000).contains(&c), "{c}");
        assert!(c > -32020, "{c} is in the range MCP 2026-07-28 reserves");
        assert_ne!(c, code::MCP_RESOURCE_NOT_FOUND);
        assert_ne!(c, code::MCP_URL_ELICITATION_REQUIRED);
    }
}

#[test]
fn error_object_data_null_is_kept() {
    let v = json!({"code": 1, "message": "m", "data": null});
    let e: ErrorObject = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(e.data, Some(Value::Null));
    assert_eq!(serde_json::to_value(&e).unwrap(), v);
    assert_eq!(ErrorObject::from_value(v.clone()).unwrap().to_value(), v);
}

#[test]
fn id_of_reads_the_id_of_an_invalid_request_when_it_can() {
    assert_eq!(id_of(&json!({"id": 3, "method": 5})), Some(Id::from(3_i64)));
    assert_eq!(id_of(&json!({"id": 1.5})), None);
    assert_eq!(id_of(&json!([{"id": 1}])), None);
}

fn arb_id() -> impl Strategy<Value = Id> {
    prop_oneof![
        any::<i64>().prop_map(Id::from),
        any::<u64>().prop_map(Id::from),
        "-?[1-9][0-9]{0,45}".prop_map(|s| serde_json::from_str::<Id>(&s).unwrap()),
        any::<String>().prop_map(Id::from),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "[a-z\"\n]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,5}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_structured() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(arb_value().prop_map(|v| match v {
        v @ (Value::Object(_) | Value::Array(_)) => v,
        other => json!({ "v": other }),
    }))
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (arb_id(), "[a-z/_]{1,20}", arb_structured())
            .prop_map(|(id, method, params)| Message::Request { id, method, params }),
        ("[a-z/_]{1,20}", arb_structured())
            .prop_map(|(method, params)| Message::Notification { method, params }),
        (arb_id(), arb_value()).prop_map(|(id, result)| Message::Response { id, result }),
        (
            prop::option::of(arb_id()),
            any::<i64>(),
            ".{0,20}",
            prop::option::of(arb_value())
        )
            .prop_map(|(id, code, message, data)| Message::ErrorResponse {
                id,
                error: ErrorObject {
                    code,
                    message,
                    data
                }
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_message_survives_serialisation_and_reclassification(message in arb_message()) {
        let text = serde_json::to_string(&message.to_value()).unwrap();
        let back = Message::from_value(serde_json::from_str(&text).unwrap()).unwrap();
        prop_assert_eq!(back, message);
    }

    #[test]
    fn classification_of_any_object_is_stable_under_reserialisation(
        fields in prop::collection::btree_map(
            prop_oneof![Just("jsonrpc".to_string()), Just("id".to_string()), Just("method".to_string()),
                        Just("params".to_string()), Just("result".to_string()), Just("error".to_string()), "[a-z]{1,3}"],
            prop_oneof![Just(json!("2.0")), arb_value(), Just(json!({"code": -1, "message": "m"}))],
            0..6),
    ) {
        let value = Value::Object(fields.into_iter().collect());
        if let Ok(message) = Message::from_value(value.clone()) {
            prop_assert_eq!(message.id().cloned(), id_of(&value));
            let again = Message::from_value(message.to_value()).unwrap();
            prop_assert_eq!(again, message);
        }
    }
}
