//! The `structured` tool: a result of about N bytes whose bulk is
//! `structuredContent` — an array of small objects, the worst case for a JSON
//! parser that builds a tree — for the proxy's large-result benchmark
//! (`benches/large_result.sh`, docs/PERFORMANCE.md).
//!
//! Invariant: the reply line is valid JSON-RPC, at least `bytes` long and
//! less than one item (~80 bytes) longer, and is written as one line built
//! as text, so the fixture's own cost stays far below the proxy's.

use std::fmt::Write as _;

use serde_json::Value;

/// Largest result the tool agrees to build, as for `huge`.
pub(crate) const STRUCTURED_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// The whole response line to request `id` (without the newline).
pub(crate) fn structured_reply(id: &Value, bytes: usize) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "null".to_owned());
    let head = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"structured items"}}],"structuredContent":{{"items":["#
    );
    let tail = "]}}}";
    let mut line = String::with_capacity(bytes + 128);
    line.push_str(&head);
    let mut i: u64 = 0;
    while line.len() + tail.len() < bytes || i == 0 {
        if i > 0 {
            line.push(',');
        }
        // Numbers, strings and booleans, as a real listing would carry.
        let _ = write!(
            line,
            r#"{{"id":{i},"name":"item-{i}","score":{}.{},"ok":{}}}"#,
            i % 1000,
            i % 97,
            i.is_multiple_of(2)
        );
        i += 1;
    }
    line.push_str(tail);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_is_valid_json_rpc_of_at_least_the_asked_size() -> Result<(), serde_json::Error> {
        let line = structured_reply(&serde_json::json!(7), 10_000);
        let v: Value = serde_json::from_str(&line)?;
        assert_eq!(v["id"], 7);
        assert!(
            line.len() >= 10_000 && line.len() < 10_100,
            "{}",
            line.len()
        );
        assert!(
            v["result"]["structuredContent"]["items"]
                .as_array()
                .is_some_and(|a| a.len() > 100)
        );
        Ok(())
    }
}
