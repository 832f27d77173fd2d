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
//! id forms, `result` beside `error`/`method`, bad UTF-8, depth, and on
//! random lines; `fuzz/fuzz_targets/envelope.rs` does the same at scale).
//!
//! Cost: serde_json's pass over the line (it checks the whole grammar while
//! it skips `result`), then one block scan for the two things skipping does
//! not check ([`tree_would_refuse`]), plus UTF-8 validation.

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
    // What serde_json checks only when it builds a tree; the scan relies on
    // the parse above having checked the grammar.
    if tree_would_refuse(text) {
        return None;
    }
    Some((n, result))
}

/// Whether the full path would refuse `text` for one of the two things
/// serde_json's skipping does not check: nesting deeper than [`MAX_DEPTH`],
/// or a `\u` escape that is a lone UTF-16 surrogate (a `String` cannot hold
/// one).
///
/// `text` must be JSON that serde_json has already accepted (the envelope's
/// parse checked its whole grammar): the scan relies on it (a backslash is
/// always inside a string, every string ends) and answers for other text
/// without meaning, though never with a panic.
///
/// One pass in blocks of [`BLOCK`] bytes, each turned into bit masks (one bit
/// a byte) of quotes, backslashes and brackets, so that structured JSON,
/// where every few bytes is a quote or a bracket, costs no branch per byte:
/// the escapes come from the backslash runs, the bytes inside strings from a
/// prefix XOR of the unescaped quotes, and the depth from the counts of the
/// brackets outside strings. A long string is skipped with `memchr2`.
fn tree_would_refuse(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut scan = Scan::default();
    let mut padded = [0u8; BLOCK];
    let mut at = 0;
    while let Some(rest) = bytes.get(at..).filter(|rest| !rest.is_empty()) {
        let block = match rest.first_chunk::<BLOCK>() {
            Some(block) => block,
            None => {
                // Zeros match no mask.
                padded[..rest.len()].copy_from_slice(rest);
                &padded
            }
        };
        match scan.block(bytes, at, block) {
            Step::Refuse => return true,
            Step::Next => at += BLOCK,
            Step::InLongString => {
                // Nothing counts before the string's next quote or
                // backslash: jump there, still inside the string.
                let next = at + BLOCK;
                match bytes
                    .get(next..)
                    .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                {
                    Some(skip) => at = next + skip,
                    // An unterminated string: not JSON, never here.
                    None => return false,
                }
            }
        }
    }
    false
}

/// The bytes [`tree_would_refuse`] classifies at once: one bit of a `u64`
/// for each.
const BLOCK: usize = 64;

/// The odd bit positions, for telling odd backslash runs from even ones.
const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;

/// What the scan does after a block.
enum Step {
    Refuse,
    Next,
    /// The whole block was inside one string, which goes on.
    InLongString,
}

/// The scan's state between blocks.
#[derive(Default)]
struct Scan {
    /// Brackets open outside strings.
    depth: usize,
    /// 1 when the last block ended on a backslash that escapes the first
    /// byte of this one.
    next_escaped: u64,
    /// All ones when the last block ended inside a string.
    in_string: u64,
    /// Where the last `\u` escape judged ends (12 bytes for a surrogate
    /// pair): the pair's second `\u` lies before it and was judged with the
    /// first.
    escape_end: usize,
}

impl Scan {
    /// One block at `bytes[at..]` (`block` is those bytes, zero-padded at
    /// the end of the text).
    fn block(&mut self, bytes: &[u8], at: usize, block: &[u8; BLOCK]) -> Step {
        let backslash = mask(block, |b| b == b'\\');
        let escaped = if backslash | self.next_escaped == 0 {
            0
        } else {
            match self.escapes(bytes, at, block, backslash) {
                Some(escaped) => escaped,
                None => return Step::Refuse,
            }
        };
        let quote = mask(block, |b| b == b'"') & !escaped;
        let was_in_string = self.in_string;
        // A bit for each byte from an opening quote up to (not including)
        // its closing quote.
        let in_string = prefix_xor(quote) ^ was_in_string;
        self.in_string = 0u64.wrapping_sub(in_string >> 63);
        // `b & 0xDF` folds `{` onto `[` and `}` onto `]`, and nothing else.
        let open = mask(block, |b| b & 0xDF == b'[') & !in_string;
        let close = mask(block, |b| b & 0xDF == b']') & !in_string;
        let (opens, closes) = (open.count_ones() as usize, close.count_ones() as usize);
        if closes <= self.depth && self.depth + opens <= MAX_DEPTH {
            // Neither the limit nor zero can be reached inside the block.
            self.depth = self.depth + opens - closes;
        } else {
            let mut brackets = open | close;
            while brackets != 0 {
                let bit = brackets & brackets.wrapping_neg();
                brackets ^= bit;
                if open & bit != 0 {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Step::Refuse;
                    }
                } else {
                    self.depth = self.depth.saturating_sub(1);
                }
            }
        }
        if was_in_string != 0 && quote | backslash == 0 {
            Step::InLongString
        } else {
            Step::Next
        }
    }

    /// The bytes of the block that a backslash escapes (bit 0 may be escaped
    /// by the last block's last byte), after judging each `\u` escape among
    /// them as serde_json would decode it; `None` for a lone surrogate.
    fn escapes(
        &mut self,
        bytes: &[u8],
        at: usize,
        block: &[u8; BLOCK],
        backslash: u64,
    ) -> Option<u64> {
        // An escaping backslash starts a run at an even or odd bit; within a
        // run every other backslash escapes, and the byte after an odd-length
        // run is escaped. The subtraction carries through each run and
        // leaves, XORed with the odd bits, the escaping backslashes and the
        // escaped bytes (simdjson's branch-free method).
        let starts = backslash & !self.next_escaped;
        let code = ((starts << 1) | ODD_BITS).wrapping_sub(starts) ^ ODD_BITS;
        let escaped = code ^ (backslash | self.next_escaped);
        self.next_escaped = (code & backslash) >> 63;
        let mut units = escaped & mask(block, |b| b == b'u');
        while units != 0 {
            let bit = units.trailing_zeros() as usize;
            units &= units - 1;
            // The escape's backslash is the byte before its `u`.
            let Some(slash) = (at + bit).checked_sub(1) else {
                continue;
            };
            if slash < self.escape_end {
                continue;
            }
            self.escape_end = slash + escape_len(bytes, slash)?;
        }
        Some(escaped)
    }
}

/// Each bit set to the XOR of the bits up to and including it.
fn prefix_xor(mut bits: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        bits ^= bits << shift;
    }
    bits
}

/// Bit `i` set when `is(block[i])`. Written so the compiler can compare 16
/// bytes at a time: each byte becomes its bit within its group of eight,
/// and a multiplication sums each group of eight into one byte (the bits
/// are distinct, so nothing carries).
#[inline(always)]
fn mask(block: &[u8; BLOCK], is: impl Fn(u8) -> bool) -> u64 {
    const SUM_BYTES: u64 = 0x0101_0101_0101_0101;
    const WEIGHTS: [u8; BLOCK] = {
        let mut weights = [0; BLOCK];
        let mut i = 0;
        while i < BLOCK {
            weights[i] = 1 << (i % 8);
            i += 1;
        }
        weights
    };
    let weighted: [u8; BLOCK] = std::array::from_fn(|i| if is(block[i]) { WEIGHTS[i] } else { 0 });
    let (groups, _) = weighted.as_chunks::<8>();
    groups.iter().enumerate().fold(0, |bits, (k, group)| {
        bits | (u64::from_le_bytes(*group).wrapping_mul(SUM_BYTES) >> 56) << (8 * k)
    })
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

/// [`success_response`] for the `framing` bench: the counter and the length
/// of the `result` text.
#[doc(hidden)]
pub fn success_response_len(line: &[u8]) -> Option<(u64, usize)> {
    success_response(line).map(|(n, result)| (n, result.get().len()))
}

/// [`tree_would_refuse`] alone, for the `framing` bench.
#[doc(hidden)]
pub fn tree_would_refuse_bench(text: &str) -> bool {
    tree_would_refuse(text)
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
    /// The scan as it was before the block scan: one byte at a time, each
    /// string skipped with `memchr2`. The reference the block scan must
    /// match on JSON.
    fn tree_would_refuse_reference(text: &str) -> bool {
        let bytes = text.as_bytes();
        let mut depth = 0usize;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i += 1;
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

    /// For JSON `text` (what the scan is given): the block scan agrees with
    /// the reference. Other text is not the scan's to judge.
    fn scan_agrees(text: &str) {
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            assert_eq!(
                tree_would_refuse(text),
                tree_would_refuse_reference(text),
                "{text}"
            );
        } else {
            let _ = tree_would_refuse(text);
        }
    }

    /// `piece` at every offset across the first block boundaries, inside
    /// `result` and inside another member.
    fn at_every_offset(piece: &str, check: impl Fn(&str)) {
        for pad in 0..(3 * BLOCK) {
            let pad = "p".repeat(pad);
            for line in [
                format!(r#"{{"jsonrpc":"2.0","id":1,"x":"{pad}","result":{piece}}}"#),
                format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"{pad}":{piece}}},"x":{piece}}}"#),
                format!(r#"{{"jsonrpc":"2.0","id":1,"result":["{pad}",{piece},"{pad}"]}}"#),
            ] {
                check(&line);
            }
        }
    }

    #[test]
    fn escapes_quotes_and_brackets_across_block_boundaries() {
        for piece in [
            r#""\\""#,
            r#""\\\\""#,
            r#""\"""#,
            r#""a\\\"b""#,
            r#""\\\\\\\"[""#,
            r#"["\\",["\"]"]]"#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud83d\ude00""#,
            r#""\\ud800""#,
            r#""\\\ud800""#,
            r#""\\\\ud800""#,
            r#""\ud800\\udc00""#,
            r#""\ud800\u0041""#,
            r#""\ud800\n""#,
            r#"["\u005b",{"\u007b":"\u005d"}]"#,
            r#"[["\ud83d\ude00"],["\udbff\udfff"]]"#,
            r#""\u0075\u005c""#,
            r#"{"[":"]","{":"}"}"#,
            r#""]]]]}}}}""#,
        ] {
            at_every_offset(piece, |line| {
                scan_agrees(line);
                agree(line.as_bytes());
            });
        }
    }

    #[test]
    fn depth_at_the_limit_across_block_boundaries() {
        // The envelope object is one level: `MAX_DEPTH - 1` fits in result.
        for levels in [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
            let nested = format!(
                "{}\"\\\"]\"{}",
                "[{\"a\":".repeat(levels / 2) + &"[".repeat(levels % 2),
                "]".repeat(levels % 2) + &"}]".repeat(levels / 2)
            );
            at_every_offset(&nested, |line| {
                scan_agrees(line);
                agree(line.as_bytes());
            });
            let line = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{nested}}}"#);
            assert_eq!(
                success_response(line.as_bytes()).is_some(),
                levels < MAX_DEPTH
            );
            assert_eq!(full_path(line.as_bytes()).is_some(), levels < MAX_DEPTH);
        }
    }

    #[test]
    fn long_strings_are_skipped_to_their_end_and_no_further() {
        for len in [
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK,
            5 * BLOCK + 3,
            40_000,
        ] {
            let body = "[{".repeat(len / 2);
            for line in [
                // Brackets after a long string still count.
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"result":["{body}",{}0{}]}}"#,
                    "[".repeat(MAX_DEPTH),
                    "]".repeat(MAX_DEPTH)
                ),
                // A long string ending on an escape, then a lone surrogate.
                format!(r#"{{"jsonrpc":"2.0","id":1,"result":["{body}\\","\udc00"]}}"#),
                format!(r#"{{"jsonrpc":"2.0","id":1,"result":["{body}\"]]]","\ud800\udc00"]}}"#),
                format!(r#"{{"jsonrpc":"2.0","id":1,"result":"{body}\ud800"}}"#),
                format!(r#"{{"jsonrpc":"2.0","id":1,"result":"{body}"}}"#),
            ] {
                scan_agrees(&line);
                agree(line.as_bytes());
            }
        }
    }

    #[test]
    fn an_escape_at_the_end_of_a_block_inside_a_long_string_carries_over() {
        // The backslash lands on every position of a block, so one of them
        // escapes the first byte of the next block; the brackets after the
        // string must still count.
        for at in 0..(2 * BLOCK) {
            for escape in [r"\n", r"\\", r#"\""#, r"\u0041", r"\ud83d\ude00"] {
                let line = format!(
                    r#"{{"jsonrpc":"2.0","id":1,"result":["{}{escape}{}",{}0{}]}}"#,
                    "x".repeat(BLOCK + at),
                    "x".repeat(3 * BLOCK),
                    "[".repeat(MAX_DEPTH),
                    "]".repeat(MAX_DEPTH)
                );
                assert!(success_response(line.as_bytes()).is_none(), "{line}");
                scan_agrees(&line);
            }
        }
    }

    /// The escaping rule one byte at a time: a backslash not itself escaped
    /// escapes the next byte.
    fn escaped_reference(backslashes: &[u64]) -> Vec<u64> {
        let mut escaping = false;
        backslashes
            .iter()
            .map(|&word| {
                let mut escaped = 0;
                for bit in 0..64 {
                    if escaping {
                        escaped |= 1 << bit;
                        escaping = false;
                    } else {
                        escaping = word & (1 << bit) != 0;
                    }
                }
                escaped
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2000,
            // No regressions directory at the crate root (the layout is
            // fixed); a failure prints its minimal input.
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn escaped_bytes_follow_the_backslash_runs(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u64>(),
                    Just(u64::MAX),
                    Just(1 << 63),
                    Just(0xC000_0000_0000_0003),
                    (0u32..64).prop_map(|n| u64::MAX.checked_shr(n).unwrap_or(0)),
                    (0u32..64).prop_map(|n| u64::MAX.checked_shl(n).unwrap_or(0)),
                ],
                1..6,
            )
        ) {
            // No `u` in the blocks (zeros), so no escape is judged.
            let mut scan = Scan::default();
            let block = [0u8; BLOCK];
            let expected = escaped_reference(&words);
            for (i, &word) in words.iter().enumerate() {
                let escaped = scan.escapes(&[], i * BLOCK, &block, word);
                proptest::prop_assert_eq!(escaped, Some(expected[i]), "word {}", i);
            }
        }

        #[test]
        fn random_lines_are_read_as_the_full_path_reads_them(line in line()) {
            if let Ok(text) = std::str::from_utf8(&line) {
                scan_agrees(text);
            }
            if let Err(why) = check_agreement(&line) {
                proptest::prop_assert!(false, "{}: {}", why, String::from_utf8_lossy(&line));
            }
        }
    }

    use proptest::prelude::{Just, Strategy};

    /// String bodies: plain text, brackets, escapes of every kind including
    /// lone and paired surrogates, and runs long enough to span blocks.
    fn string_body() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::prop_oneof![
                10 => Just("a".to_owned()),
                10 => Just("é".to_owned()),
                10 => Just("[".to_owned()),
                10 => Just("]".to_owned()),
                10 => Just("{".to_owned()),
                10 => Just("}".to_owned()),
                10 => Just("u".to_owned()),
                10 => Just(r"\\".to_owned()),
                10 => Just(r#"\""#.to_owned()),
                10 => Just(r"\n".to_owned()),
                10 => Just(r"\/".to_owned()),
                10 => Just(r"\u0041".to_owned()),
                10 => Just(r"\u005c".to_owned()),
                1 => Just(r"\ud800".to_owned()),
                1 => Just(r"\udc00".to_owned()),
                1 => Just(r"\udbff".to_owned()),
                10 => Just(r"\ud83d\ude00".to_owned()),
                10 => Just(r"\\u".to_owned()),
                10 => (1usize..150).prop_map(|n| "x".repeat(n)),
            ],
            0..12,
        )
        .prop_map(|pieces| format!("\"{}\"", pieces.concat()))
    }

    /// JSON-ish values: leaves, arrays and objects, and some nested close
    /// to the depth limit.
    fn value() -> impl Strategy<Value = String> {
        let leaf = proptest::prop_oneof![
            Just("0".to_owned()),
            Just("-1.5e3".to_owned()),
            Just("1e400".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            string_body(),
        ];
        let tree = leaf.prop_recursive(6, 64, 6, |inner| {
            proptest::prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec((string_body(), inner), 0..6).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        });
        (
            tree,
            proptest::prop_oneof![Just(0usize), 0usize..8, 118usize..132],
        )
            .prop_map(|(tree, levels)| {
                format!("{}{tree}{}", "[".repeat(levels), "]".repeat(levels))
            })
    }

    /// Response lines around those values (with padding that moves them
    /// across block boundaries), some with bytes changed, cut or inserted.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        let response = (value(), proptest::option::of(value()), 0usize..80, 0u64..3).prop_map(
            |(result, extra, pad, id)| {
                let pad = " ".repeat(pad);
                let extra = extra.map(|v| format!(r#","x":{v}"#)).unwrap_or_default();
                format!(r#"{{"jsonrpc":"2.0",{pad}"id":{id},"result":{result}{extra}}}"#)
                    .into_bytes()
            },
        );
        let edits = proptest::collection::vec(
            (
                proptest::prelude::any::<proptest::sample::Index>(),
                0u8..3,
                proptest::prop_oneof![
                    proptest::sample::select(b"\"\\[]{}u,:0 dD8".to_vec()),
                    proptest::prelude::any::<u8>(),
                ],
            ),
            0..4,
        );
        (response, edits, proptest::prelude::any::<bool>()).prop_map(|(mut line, edits, edit)| {
            if edit {
                for (at, how, byte) in edits {
                    let at = at.index(line.len() + 1);
                    match how {
                        0 if at < line.len() => line[at] = byte,
                        1 if at < line.len() => {
                            line.remove(at);
                        }
                        _ => line.insert(at, byte),
                    }
                }
            }
            line
        })
    }
}
