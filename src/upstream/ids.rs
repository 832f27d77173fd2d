//! Id and progress-token rewriting between a client's id space and one
//! connection's.
//!
//! Every request a connection sends upstream carries an id the connection
//! chose (a per-connection counter, so two clients' `"id": 1` can never meet
//! on one process), and if it asks for progress, a progress token equal to
//! that same number (unique among the connection's active requests because
//! the ids are). The functions here only move values in and out of the places
//! MCP puts them; they never look at anything else in `params`, which is
//! forwarded byte for byte.
//!
//! Invariant: a rewrite followed by the matching restore gives back exactly
//! the client's original value (the tests pin it for strings, big and
//! negative integers).

use serde_json::Value;

use crate::jsonrpc::Id;

/// The connection-side id for counter value `n`.
pub fn upstream_id(n: u64) -> Id {
    Id::from(n)
}

/// The counter value of a connection-side id, if `id` is one of ours
/// (a non-negative integer that fits `u64`).
pub fn counter_of(id: &Id) -> Option<u64> {
    match id {
        Id::Number(n) => n.as_u64(),
        Id::String(_) => None,
    }
}

/// Replaces `params._meta.progressToken` with `token` and returns the value
/// it held, or `None` (and leaves `params` alone) when the request asks for
/// no progress.
pub fn swap_progress_token(params: &mut Option<Value>, token: Value) -> Option<Value> {
    let slot = params
        .as_mut()?
        .as_object_mut()?
        .get_mut("_meta")?
        .as_object_mut()?
        .get_mut("progressToken")?;
    Some(std::mem::replace(slot, token))
}

/// The `progressToken` of a `notifications/progress`'s params.
pub fn progress_token(params: Option<&Value>) -> Option<&Value> {
    params?.get("progressToken")
}

/// Sets the `progressToken` of a `notifications/progress`'s params.
pub fn set_progress_token(params: &mut Value, token: Value) {
    if let Some(obj) = params.as_object_mut() {
        obj.insert("progressToken".into(), token);
    }
}

/// The `requestId` of a `notifications/cancelled`'s params, if it is a valid id.
pub fn cancelled_request_id(params: Option<&Value>) -> Option<Id> {
    let id = params?.get("requestId")?.clone();
    Id::from_value(id).ok()
}

/// Sets the `requestId` of a `notifications/cancelled`'s params.
pub fn set_cancelled_request_id(params: &mut Value, id: &Id) {
    if let Some(obj) = params.as_object_mut() {
        obj.insert("requestId".into(), id.to_value());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_token_swap_then_restore_gives_back_the_original() {
        for original in [
            json!("tok-1"),
            json!(7),
            serde_json::from_str::<Value>("123456789012345678901234567890").unwrap(),
            json!(-3),
        ] {
            let mut params = Some(json!({"name": "x", "_meta": {"progressToken": original}}));
            let old = swap_progress_token(&mut params, json!(42)).unwrap();
            assert_eq!(
                params.as_ref().unwrap()["_meta"]["progressToken"],
                json!(42)
            );
            assert_eq!(old, original);
            let mut note = json!({"progressToken": 42, "progress": 1});
            set_progress_token(&mut note, old);
            assert_eq!(progress_token(Some(&note)), Some(&original));
            assert_eq!(
                serde_json::to_string(&note["progressToken"]).unwrap(),
                serde_json::to_string(&original).unwrap()
            );
        }
    }

    #[test]
    fn requests_without_a_progress_token_are_left_alone() {
        let mut none = None;
        assert_eq!(swap_progress_token(&mut none, json!(1)), None);
        let mut params = Some(json!({"_meta": {"other": 1}}));
        assert_eq!(swap_progress_token(&mut params, json!(1)), None);
        assert_eq!(params, Some(json!({"_meta": {"other": 1}})));
        let mut arr = Some(json!([1, 2]));
        assert_eq!(swap_progress_token(&mut arr, json!(1)), None);
    }

    #[test]
    fn only_unsigned_integer_ids_are_ours() {
        assert_eq!(counter_of(&upstream_id(5)), Some(5));
        assert_eq!(counter_of(&Id::from(-5i64)), None);
        assert_eq!(counter_of(&Id::from("5")), None);
        let big: Id = serde_json::from_str("123456789012345678901234567890").unwrap();
        assert_eq!(counter_of(&big), None);
    }

    #[test]
    fn cancelled_request_id_is_read_and_replaced() {
        let mut params = json!({"requestId": "abc", "reason": "user"});
        assert_eq!(cancelled_request_id(Some(&params)), Some(Id::from("abc")));
        set_cancelled_request_id(&mut params, &upstream_id(9));
        assert_eq!(params, json!({"requestId": 9, "reason": "user"}));
        assert_eq!(
            cancelled_request_id(Some(&json!({"requestId": null}))),
            None
        );
    }
}
