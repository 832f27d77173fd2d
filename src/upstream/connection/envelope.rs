//! The envelope of a server's line: enough of its top level, decoded with
//! borrowed `RawValue`s, to tell a plain success response to one of our
//! requests from everything else, without building a `Value` tree.
//!
//! Invariant: [`success_response`] returns `Some((n, result))` only for a
//! line the full path (`framing::parse_line` then `Message::from_value` then
//! `ids::counter_of`) would read as a success response to counter `n` with
//! that same `result`. Anything it is unsure of gets `None` and goes the full
//! path, so the two can never disagree about what a line means (the unit
//! tests below run both on the awkward cases: duplicate and escaped keys,
//! id forms, `result` beside `error`/`method`, bad UTF-8, depth).

use serde::Deserialize;
use serde_json::value::RawValue;

/// The deepest nesting `serde_json` builds into a `Value` (its recursion
/// limit of 128 counts down before each level and fails at 0, so 127 levels
/// fit); the full path drops a deeper line, so the envelope path must too.
const MAX_DEPTH: usize = 127;

/// The top level of a message, the members borrowed as JSON text.
/// Unknown members are ignored, as `Message::from_value` ignores them.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<&'a str>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    /// Present at all, even as `null` (the full path counts that too).
    #[serde(default, deserialize_with = "present")]
    method: bool,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// If `line` is a success response whose id is one of ours (a counter
/// value), that counter and the `result` text; `None` for anything else.
pub(super) fn success_response(line: &[u8]) -> Option<(u64, &RawValue)> {
    // UTF-8 over the whole line first, as `parse_line` does: serde_json does
    // not validate the strings it skips (unknown members, `RawValue`s).
    let text = std::str::from_utf8(line).ok()?;
    // A repeated member fails here (serde's duplicate-field check, escaped
    // spellings included) and goes the full path, which keeps the last one.
    let env = serde_json::from_str::<Envelope<'_>>(text).ok()?;
    let (Some("2.0"), Some(id), false, Some(result), false) =
        (env.jsonrpc, env.id, env.method, env.result, env.error)
    else {
        return None;
    };
    // Our ids are plain non-negative integers (`ids::upstream_id`); any
    // other spelling (`1.0`, `1e0`, `"1"`, `-0`) goes the full path.
    let n = id.get().parse::<u64>().ok()?;
    // What serde_json checks only when it builds a tree.
    if tree_would_refuse(text) {
        return None;
    }
    Some((n, result))
}

/// Whether the full path would refuse `text` (JSON that serde_json skipped
/// without building it) for one of the two things skipping does not check:
/// nesting deeper than [`MAX_DEPTH`], or a `\u` escape that is a lone
/// UTF-16 surrogate (a `String` cannot hold one). One pass over the bytes.
fn tree_would_refuse(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // The string, to the next quote not escaped (memchr: strings
                // are most of a large result's bytes).
                i += 1;
                // `get`: never a panic, even on text that were not JSON.
                while let Some(at) = bytes
                    .get(i..)
                    .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                {
                    i += at;
                    if bytes[i] == b'"' {
                        break;
                    }
                    if bytes.get(i + 1) == Some(&b'u') {
                        match escape_len(bytes, i) {
                            Some(len) => i += len,
                            None => return true,
                        }
                    } else {
                        i += 2;
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// The length of the `\u` escape at `bytes[at..]` as serde_json reads it
/// into a `String`: 6 bytes, or 12 for a surrogate pair; `None` for a lone
/// surrogate, which it refuses.
fn escape_len(bytes: &[u8], at: usize) -> Option<usize> {
    let unit = |from: usize| -> Option<u16> {
        let hex = std::str::from_utf8(bytes.get(from..from + 4)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    match unit(at + 2)? {
        0xDC00..=0xDFFF => None,
        0xD800..=0xDBFF => {
            if bytes.get(at + 6..at + 8)? != b"\\u" {
                return None;
            }
            matches!(unit(at + 8)?, 0xDC00..=0xDFFF).then_some(12)
        }
        _ => Some(6),
    }
}

/// The envelope path's invariant on one line, for the differential fuzz
/// target (`fuzz/fuzz_targets/envelope.rs`) and the unit tests: `Err` with
/// the reason when [`success_response`] accepts `line` but the full path
/// (`framing::parse_line`, `Message::from_value`, `ids::counter_of`) does
/// not, or reads it as a different counter or `result`. Declining what the
/// full path accepts is allowed (the line then takes the full path).
#[doc(hidden)]
pub fn check_agreement(line: &[u8]) -> Result<(), String> {
    use crate::jsonrpc::Message;
    use serde_json::Value;
    let Some((n, raw)) = success_response(line) else {
        return Ok(());
    };
    let envelope_result: Value = serde_json::from_str(raw.get())
        .map_err(|e| format!("the envelope's result is not JSON: {e}"))?;
    let full = crate::framing::parse_line(line)
        .ok()
        .and_then(|value| Message::from_value(value).ok())
        .and_then(|message| match message {
            Message::Response { id, result } => {
                Some((crate::upstream::ids::counter_of(&id)?, result))
            }
            _ => None,
        });
    match full {
        Some((m, result)) if m == n && result == envelope_result => Ok(()),
        Some((m, result)) => Err(format!(
            "the paths disagree: envelope ({n}, {envelope_result}), full ({m}, {result})"
        )),
        None => Err("the envelope path accepted what the full path refuses".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::framing::parse_line;
    use crate::jsonrpc::Message;
    use crate::upstream::ids;
    use serde_json::Value;

    /// What the full path makes of `line`: a success response's counter and
    /// result, or `None` for anything else.
    fn full_path(line: &[u8]) -> Option<(u64, Value)> {
        let value = parse_line(line).ok()?;
        match Message::from_value(value).ok()? {
            Message::Response { id, result } => Some((ids::counter_of(&id)?, result)),
            _ => None,
        }
    }

    fn agree(line: &[u8]) {
        if let Err(why) = check_agreement(line) {
            panic!("{why}: {}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_plain_success_response_takes_the_envelope_path() {
        let line = br#"{"jsonrpc":"2.0","id":7,"result":{"a":[1,2.50,"\u00e9"]}}"#;
        let (n, result) = success_response(line).unwrap();
        assert_eq!(n, 7);
        assert_eq!(result.get(), r#"{"a":[1,2.50,"\u00e9"]}"#);
        agree(line);
        // Whitespace, member order and unknown members do not matter.
        let line = br#" { "result" : [] , "x" : {"y":null}, "id" : 3 , "jsonrpc" : "2.0" } "#;
        assert_eq!(success_response(line).unwrap().0, 3);
        agree(line);
    }

    #[test]
    fn escaped_member_names_are_read_as_the_full_path_reads_them() {
        let line = br#"{"jsonrp\u0063":"2.0","i\u0064":4,"res\u0075lt":true}"#;
        assert_eq!(success_response(line).map(|(n, _)| n), Some(4));
        agree(line);
        // An escaped "error" beside a result is still an error member.
        let line = br#"{"jsonrpc":"2.0","id":4,"result":1,"\u0065rror":null}"#;
        assert!(success_response(line).is_none());
        agree(line);
        // An escaped version string cannot be borrowed: full path.
        let line = br#"{"jsonrpc":"2\u002e0","id":4,"result":1}"#;
        assert!(success_response(line).is_none());
        assert!(full_path(line).is_some());
    }

    #[test]
    fn repeated_members_go_the_full_path() {
        for line in [
            &br#"{"jsonrpc":"2.0","id":1,"id":2,"result":{}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{},"result":[]}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{},"r\u0065sult":[]}"#,
            br#"{"jsonrpc":"1.0","jsonrpc":"2.0","id":1,"result":{}}"#,
        ] {
            assert!(success_response(line).is_none());
            agree(line);
        }
    }

    #[test]
    fn only_our_id_spelling_takes_the_envelope_path() {
        for (id, ours) in [
            ("0", true),
            ("18446744073709551615", true),
            ("18446744073709551616", false),
            ("-1", false),
            ("-0", false),
            ("1.0", false),
            ("1e0", false),
            (r#""1""#, false),
            ("null", false),
            ("[1]", false),
            ("true", false),
        ] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#);
            assert_eq!(success_response(line.as_bytes()).is_some(), ours, "{id}");
            agree(line.as_bytes());
        }
    }

    #[test]
    fn anything_but_a_plain_success_response_goes_the_full_path() {
        for line in [
            // result beside error (even null), or beside a method
            &br#"{"jsonrpc":"2.0","id":1,"result":{},"error":null}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":null,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"m","result":{}}"#,
            // a null result is a valid response, but not ours to shortcut
            br#"{"jsonrpc":"2.0","id":1,"result":null}"#,
            // wrong or missing version
            br#"{"jsonrpc":"2.1","id":1,"result":{}}"#,
            br#"{"jsonrpc":2,"id":1,"result":{}}"#,
            br#"{"id":1,"result":{}}"#,
            // no id, error responses, requests, notifications
            br#"{"jsonrpc":"2.0","result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            // not an object, not JSON, trailing bytes
            br#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}} x"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}}{}"#,
        ] {
            assert!(
                success_response(line).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
            agree(line);
        }
    }

    #[test]
    fn invalid_utf8_anywhere_goes_the_full_path() {
        for line in [
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xff\"}"[..],
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"extra\":\"\xc3\"}",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"\xfe\":1}}",
        ] {
            assert!(success_response(line).is_none());
            agree(line);
        }
    }

    #[test]
    fn lone_surrogates_and_huge_numbers_are_judged_as_the_full_path_judges_them() {
        for line in [
            &br#"{"jsonrpc":"2.0","id":1,"result":"\ud800"}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{},"x":"\udc00"}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":1e400}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{},"x":-1e99999}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":"\ud800\udc00 \udbff\udfff"}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":"\ud800\ud800"}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":"\ud800\n"}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"\udfff":1}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":"\\ud800"}"#,
        ] {
            agree(line);
        }
        // A valid pair and an escaped backslash are fine; a lone half is not.
        assert!(success_response(br#"{"jsonrpc":"2.0","id":1,"result":"\ud83d\ude00"}"#).is_some());
        assert!(success_response(br#"{"jsonrpc":"2.0","id":1,"result":"\\ud800"}"#).is_some());
        assert!(success_response(br#"{"jsonrpc":"2.0","id":1,"result":"\ud800"}"#).is_none());
    }

    #[test]
    fn nesting_deeper_than_a_tree_allows_goes_the_full_path() {
        let at = |depth: usize, in_extra: bool| {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            if in_extra {
                format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{}},"x":{nested}}}"#)
            } else {
                format!(r#"{{"jsonrpc":"2.0","id":1,"result":{nested}}}"#)
            }
        };
        for in_extra in [false, true] {
            // The envelope object itself is one level.
            let fits = at(MAX_DEPTH - 1, in_extra);
            assert!(full_path(fits.as_bytes()).is_some());
            assert!(success_response(fits.as_bytes()).is_some());
            let deep = at(MAX_DEPTH, in_extra);
            assert!(success_response(deep.as_bytes()).is_none());
            agree(deep.as_bytes());
        }
        // Brackets inside strings (escaped quotes included) do not count.
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":"\"{}"}}"#,
            "[".repeat(MAX_DEPTH + 5)
        );
        assert!(success_response(line.as_bytes()).is_some());
        agree(line.as_bytes());
    }

    #[test]
    fn the_scan_never_panics_on_truncated_text() {
        for text in [
            "\"",
            "\"\\",
            "\"\\u",
            "\"\\ud800",
            "\"\\ud800\\",
            "[[\"\\u12",
            "\"abc",
        ] {
            let _ = tree_would_refuse(text);
        }
    }
}
