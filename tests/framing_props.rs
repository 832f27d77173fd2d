//! Properties of the stdio framing codec, checked with proptest: round trip,
//! chunking invariance, exact recovery around bad lines, bounded buffering,
//! and agreement with tokio-util's `LinesCodec` where both apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::Value;
use stdiopool::framing::{JsonRpcCodec, LineError, RawLineCodec};
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};

/// One thing the decoder reported, in order.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Frame(Value),
    Line(LineError),
    /// A fatal error (its `Display`), which ends the stream.
    Fatal(String),
}

/// Outcome with errors reduced to their kind, for comparing with a model that
/// does not reproduce snippets.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Frame(Value),
    TooLarge,
    InvalidUtf8,
    InvalidJson,
    Truncated,
}

fn kind(o: &Outcome) -> Kind {
    match o {
        Outcome::Frame(v) => Kind::Frame(v.clone()),
        Outcome::Line(LineError::FrameTooLarge { .. }) => Kind::TooLarge,
        Outcome::Line(LineError::InvalidUtf8 { .. }) => Kind::InvalidUtf8,
        Outcome::Line(LineError::InvalidJson { .. }) => Kind::InvalidJson,
        Outcome::Fatal(_) => Kind::Truncated,
    }
}

/// Drives the codec the way `FramedRead` does: append a read, decode until
/// `None`, repeat; at EOF call `decode_eof` until `None` or an error. Checks
/// the buffer bound at every step.
fn decode_chunks(max: usize, chunks: &[&[u8]]) -> Vec<Outcome> {
    let mut codec = JsonRpcCodec::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        assert!(
            buf.len() <= max + 1 + chunk.len(),
            "buffer {} > limit {} + 1 + read {}",
            buf.len(),
            max,
            chunk.len()
        );
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(match item {
                Ok(v) => Outcome::Frame(v),
                Err(e) => Outcome::Line(e),
            });
        }
        assert!(
            buf.len() <= max + 1,
            "buffer {} held past limit {max}",
            buf.len()
        );
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(Ok(v))) => out.push(Outcome::Frame(v)),
            Ok(Some(Err(e))) => out.push(Outcome::Line(e)),
            Ok(None) => break,
            Err(e) => {
                out.push(Outcome::Fatal(e.to_string()));
                break;
            }
        }
    }
    out
}

/// Splits `bytes` at the given cut points (taken modulo the length).
fn split_at_points<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points {
        chunks.push(&bytes[start..p]);
        start = p;
    }
    chunks.push(&bytes[start..]);
    chunks
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "-?[1-9][0-9]{18,40}".prop_map(|s| serde_json::from_str::<Value>(&s).unwrap()),
        any::<String>().prop_map(Value::String),
        // Strings that try hard to break a line.
        "[\n\r\u{2028}\u{2029}\"\\\\ a-z]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\n\"]{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A line of a test stream, with what the decoder must report for it.
#[derive(Debug, Clone)]
enum Segment {
    Frame {
        value: Value,
        crlf: bool,
    },
    /// Text a server logs to stdout by mistake.
    Garbage(String),
    /// Bytes that are not UTF-8.
    NotUtf8(Vec<u8>),
    Blank(&'static str),
    /// A line of `n` bytes, longer than the limit.
    Overlong(usize),
}

const MAX: usize = 256;

fn arb_segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        4 => (arb_json(), any::<bool>()).prop_map(|(value, crlf)| Segment::Frame { value, crlf }),
        1 => "(Server|INFO|listening|warn:)[ a-z0-9:]{0,40}".prop_map(Segment::Garbage),
        1 => (prop::collection::vec(any::<u8>(), 0..20), 0xF8u8..=0xFF)
            .prop_map(|(mut bytes, bad)| {
                bytes.retain(|b| *b != b'\n');
                bytes.push(bad);
                Segment::NotUtf8(bytes)
            }),
        1 => prop_oneof![Just(""), Just(" "), Just("\r"), Just("\t \r")].prop_map(Segment::Blank),
        1 => (MAX + 1..MAX * 4).prop_map(Segment::Overlong),
    ]
}

impl Segment {
    fn bytes(&self) -> Vec<u8> {
        let mut out = match self {
            Segment::Frame { value, crlf } => {
                let mut s = serde_json::to_vec(value).unwrap();
                if *crlf {
                    s.push(b'\r');
                }
                s
            }
            Segment::Garbage(s) => s.clone().into_bytes(),
            Segment::NotUtf8(b) => b.clone(),
            Segment::Blank(s) => s.as_bytes().to_vec(),
            Segment::Overlong(n) => vec![b'x'; *n],
        };
        out.push(b'\n');
        out
    }

    /// What the decoder must report for this line (the model).
    fn expected(&self) -> Option<Kind> {
        let bytes = self.bytes();
        let content = bytes.strip_suffix(b"\n").unwrap();
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.len() > MAX {
            return Some(Kind::TooLarge);
        }
        match self {
            Segment::Frame { value, .. } => Some(Kind::Frame(value.clone())),
            Segment::Garbage(_) => Some(Kind::InvalidJson),
            Segment::NotUtf8(_) => Some(Kind::InvalidUtf8),
            Segment::Blank(_) => None,
            Segment::Overlong(_) => Some(Kind::TooLarge),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_gives_back_every_value(values in prop::collection::vec(arb_json(), 1..8)) {
        let mut codec = JsonRpcCodec::default();
        let mut buf = BytesMut::new();
        for v in &values {
            codec.encode(v, &mut buf).unwrap();
        }
        // One message per line, however nasty its strings.
        prop_assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), values.len());
        let decoded = decode_chunks(stdiopool::framing::DEFAULT_MAX_FRAME_BYTES, &[&buf]);
        let expected: Vec<Outcome> = values.into_iter().map(Outcome::Frame).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn valid_frames_among_garbage_blank_and_overlong_lines_come_out_in_order_with_one_error_per_bad_line(
        segments in prop::collection::vec(arb_segment(), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let stream: Vec<u8> = segments.iter().flat_map(Segment::bytes).collect();
        let expected: Vec<Kind> = segments.iter().filter_map(Segment::expected).collect();
        let whole = decode_chunks(MAX, &[&stream]);
        prop_assert_eq!(whole.iter().map(kind).collect::<Vec<_>>(), expected);
        let chunked = decode_chunks(MAX, &split_at_points(&stream, &cuts));
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn same_bytes_split_anywhere_give_the_same_messages_and_errors(
        segments in prop::collection::vec(arb_segment(), 0..10),
        tail in prop::collection::vec(any::<u8>(), 0..MAX * 2),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        // A stream that may end inside a frame (or an overlong line).
        let mut stream: Vec<u8> = segments.iter().flat_map(Segment::bytes).collect();
        stream.extend_from_slice(&tail);
        let whole = decode_chunks(MAX, &[&stream]);
        prop_assert_eq!(&decode_chunks(MAX, &split_at_points(&stream, &cuts)), &whole);
        // One byte per read: the slowest trickle.
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(&decode_chunks(MAX, &bytewise), &whole);
    }

    #[test]
    fn buffer_stays_within_limit_plus_one_read_whatever_the_bytes(
        max in 0usize..64,
        // Few newlines, so long lines are common.
        stream in prop::collection::vec(prop_oneof![20 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b'\r')], 0..2048),
        read in 1usize..300,
    ) {
        // `decode_chunks` asserts the bound after every read and decode.
        let chunks: Vec<&[u8]> = stream.chunks(read).collect();
        let chunked = decode_chunks(max, &chunks);
        prop_assert_eq!(chunked, decode_chunks(max, &[&stream]));
    }

    #[test]
    fn agrees_with_lines_codec_on_newline_terminated_utf8_without_carriage_returns(
        lines in prop::collection::vec(prop_oneof![
            3 => arb_json().prop_map(|v| serde_json::to_string(&v).unwrap()),
            1 => "[^\n\r]{0,40}",
            1 => (MAX - 2..MAX + 3).prop_map(|n| "y".repeat(n)),
            1 => Just(String::new()),
        ], 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let chunks = split_at_points(&stream, &cuts);

        // Reference: LinesCodec, continuing after its overlong-line error.
        let mut reference = LinesCodec::new_with_max_length(MAX);
        let mut buf = BytesMut::new();
        let mut expected_raw: Vec<Result<Vec<u8>, ()>> = Vec::new();
        for chunk in &chunks {
            buf.extend_from_slice(chunk);
            loop {
                match reference.decode(&mut buf) {
                    Ok(Some(line)) => expected_raw.push(Ok(line.into_bytes())),
                    Ok(None) => break,
                    Err(LinesCodecError::MaxLineLengthExceeded) => expected_raw.push(Err(())),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        prop_assert!(buf.is_empty());
        // Our codecs skip blank lines; LinesCodec returns them.
        expected_raw.retain(|l| !matches!(l, Ok(b) if b.iter().all(|c| matches!(c, b' ' | b'\t'))));

        // RawLineCodec must give the very same lines.
        let mut raw = RawLineCodec::new(MAX);
        let mut buf = BytesMut::new();
        let mut got_raw = Vec::new();
        for chunk in &chunks {
            buf.extend_from_slice(chunk);
            while let Some(item) = raw.decode(&mut buf).unwrap() {
                got_raw.push(item.map(|b| b.to_vec()).map_err(|_| ()));
            }
        }
        prop_assert!(raw.decode_eof(&mut buf).unwrap().is_none());
        prop_assert_eq!(&got_raw, &expected_raw);

        // JsonRpcCodec must give LinesCodec's lines, parsed.
        let expected: Vec<Kind> = expected_raw
            .iter()
            .map(|l| match l {
                Ok(line) => serde_json::from_slice::<Value>(line).map_or(Kind::InvalidJson, Kind::Frame),
                Err(()) => Kind::TooLarge,
            })
            .collect();
        let got: Vec<Kind> = decode_chunks(MAX, &chunks).iter().map(kind).collect();
        prop_assert_eq!(got, expected);
    }
}
