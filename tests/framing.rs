//! Exact behaviour of the stdio framing codec at its edges: line endings,
//! the frame limit to the byte, error texts, EOF, the encoder's one-line
//! guarantee, and a real `FramedRead`/`FramedWrite` over async I/O.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::{Value, json};
use stdiopool::framing::{
    DEFAULT_MAX_FRAME_BYTES, FramingError, JsonRpcCodec, LineError, RawLineCodec,
};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{Decoder, Encoder, FramedRead};

fn decode_all(
    codec: &mut JsonRpcCodec,
    input: &[u8],
) -> (Vec<Result<Value, LineError>>, Option<FramingError>) {
    let mut buf = BytesMut::from(input);
    let mut items = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return (items, None),
            Err(e) => return (items, Some(e)),
        }
    }
}

#[test]
fn lf_and_crlf_both_end_a_frame_and_blank_lines_are_skipped() {
    let input = b"{\"a\":1}\n\r\n  \t\r\n\n{\"b\":2}\r\n";
    let (items, fatal) = decode_all(&mut JsonRpcCodec::new(64), input);
    assert!(fatal.is_none());
    assert_eq!(items, vec![Ok(json!({"a":1})), Ok(json!({"b":2}))]);
}

#[test]
fn frame_limit_counts_content_not_the_line_terminator() {
    // 10-byte content: `"12345678"`.
    let frame = b"\"12345678\"";
    let at_limit = |ending: &[u8], max: usize| {
        let mut input = frame.to_vec();
        input.extend_from_slice(ending);
        decode_all(&mut JsonRpcCodec::new(max), &input).0
    };
    assert_eq!(at_limit(b"\n", 10), vec![Ok(json!("12345678"))]);
    assert_eq!(at_limit(b"\r\n", 10), vec![Ok(json!("12345678"))]);
    assert_eq!(
        at_limit(b"\n", 9),
        vec![Err(LineError::FrameTooLarge { limit: 9 })]
    );
    assert_eq!(
        at_limit(b"\r\n", 9),
        vec![Err(LineError::FrameTooLarge { limit: 9 })]
    );
}

#[test]
fn overlong_line_is_reported_once_and_decoding_resumes_after_its_newline() {
    let mut input = b"{\"before\":true}\n".to_vec();
    input.extend(std::iter::repeat_n(b'z', 10_000));
    input.extend_from_slice(b"\n{\"after\":true}\n");
    let (items, fatal) = decode_all(&mut JsonRpcCodec::new(100), &input);
    assert!(fatal.is_none());
    assert_eq!(
        items,
        vec![
            Ok(json!({"before": true})),
            Err(LineError::FrameTooLarge { limit: 100 }),
            Ok(json!({"after": true})),
        ]
    );
}

#[test]
fn overlong_line_is_discarded_as_it_arrives_without_being_buffered() {
    let mut codec = JsonRpcCodec::new(1000);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[b'q'; 1500]);
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Err(LineError::FrameTooLarge { limit: 1000 }))
    );
    for _ in 0..100 {
        buf.extend_from_slice(&[b'q'; 4096]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(
            buf.is_empty(),
            "kept {} bytes of a discarded line",
            buf.len()
        );
    }
    buf.extend_from_slice(b"qq\n[1]\n");
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(Ok(json!([1]))));
}

#[test]
fn log_line_on_stdout_gives_an_invalid_json_error_with_an_escaped_snippet() {
    let (items, _) = decode_all(
        &mut JsonRpcCodec::new(1024),
        b"Server \"x\" started\t on port 3000\n[]\n",
    );
    let Err(LineError::InvalidJson { snippet, reason }) = &items[0] else {
        panic!("{items:?}");
    };
    assert_eq!(snippet, r#""Server \"x\" started\t on port 3000""#);
    assert!(reason.contains("line 1 column"), "{reason}");
    assert_eq!(items[1], Ok(json!([])));
    let text = items[0].as_ref().unwrap_err().to_string();
    assert!(text.starts_with("line is not valid JSON ("), "{text}");
}

#[test]
fn invalid_utf8_gives_its_own_error_with_bytes_escaped() {
    let (items, _) = decode_all(&mut JsonRpcCodec::new(1024), b"{\"a\":\"\xff\xfe\"}\n1\n");
    assert_eq!(
        items,
        vec![
            Err(LineError::InvalidUtf8 {
                snippet: r#""{\"a\":\"\xff\xfe\"}""#.into()
            }),
            Ok(json!(1)),
        ]
    );
}

#[test]
fn snippet_of_a_huge_bad_line_is_short() {
    let line = format!("oops {}\n", "é".repeat(100_000));
    let (items, _) = decode_all(&mut JsonRpcCodec::default(), line.as_bytes());
    let message = items[0].as_ref().unwrap_err().to_string();
    assert!(message.len() < 300, "{} bytes: {message}", message.len());
    assert!(message.contains("bytes)"), "{message}");
}

#[test]
fn eof_inside_a_frame_is_reported_after_the_complete_frames() {
    let (items, fatal) = decode_all(&mut JsonRpcCodec::new(1024), b"{\"id\":1}\n{\"id\":2,\"res");
    assert_eq!(items, vec![Ok(json!({"id": 1}))]);
    match fatal {
        Some(FramingError::TruncatedFrame { bytes, snippet }) => {
            assert_eq!(bytes, 12);
            assert_eq!(snippet, r#""{\"id\":2,\"res""#);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn eof_after_blank_leftovers_or_a_discarded_line_is_clean() {
    assert!(
        decode_all(&mut JsonRpcCodec::new(8), b"[]\n \r")
            .1
            .is_none()
    );
    // The overlong line was already reported; EOF cutting it adds nothing.
    let (items, fatal) = decode_all(&mut JsonRpcCodec::new(8), b"[]\nxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_eq!(
        items,
        vec![Ok(json!([])), Err(LineError::FrameTooLarge { limit: 8 })]
    );
    assert!(fatal.is_none());
}

#[test]
fn raw_codec_returns_line_content_without_terminators() {
    let mut codec = RawLineCodec::new(16);
    let mut buf = BytesMut::from(&b"abc\r\n\nnot json\n"[..]);
    assert_eq!(
        codec.decode(&mut buf).unwrap().unwrap().unwrap(),
        &b"abc"[..]
    );
    assert_eq!(
        codec.decode(&mut buf).unwrap().unwrap().unwrap(),
        &b"not json"[..]
    );
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());
}

#[test]
fn encoder_writes_compact_json_and_one_newline() {
    let mut buf = BytesMut::new();
    let msg = json!({"jsonrpc": "2.0", "id": 1, "result": {"text": "a\nb\r\u{2028}"}});
    JsonRpcCodec::default().encode(&msg, &mut buf).unwrap();
    assert_eq!(
        &buf[..],
        &b"{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{\"text\":\"a\\nb\\r\xe2\x80\xa8\"}}\n"[..]
    );
}

#[test]
fn encoder_refuses_a_value_whose_text_would_span_two_lines() {
    let bad = Value::Number(serde_json::Number::from_string_unchecked("1\n2".into()));
    let mut buf = BytesMut::from(&b"[]\n"[..]);
    let mut message = serde_json::Map::new();
    message.insert("id".into(), bad);
    let err = JsonRpcCodec::default()
        .encode(Value::Object(message), &mut buf)
        .unwrap_err();
    assert!(
        matches!(
            err,
            FramingError::EmbeddedNewline | FramingError::Serialize(_)
        ),
        "{err}"
    );
    assert_eq!(
        &buf[..],
        b"[]\n",
        "a refused message must leave nothing behind"
    );
}

#[test]
fn default_limit_is_sixteen_mebibytes() {
    assert_eq!(DEFAULT_MAX_FRAME_BYTES, 16 * 1024 * 1024);
    assert_eq!(
        JsonRpcCodec::default().max_frame_bytes(),
        DEFAULT_MAX_FRAME_BYTES
    );
}

/// An `AsyncRead` that hands out pre-cut chunks, one per read.
struct ChunkedReader(VecDeque<Vec<u8>>);

impl AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut chunk) = self.0.pop_front() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.push_front(chunk.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn framed_read_keeps_going_after_recoverable_errors() {
    let chunks = vec![
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\nnpm WARN deprecated".to_vec(),
        b" something\n\xc3\x28\n".to_vec(),
        vec![b'#'; 300],
        b"\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r".to_vec(),
        b"\n{\"jsonrpc\":\"2.0\",\"id\":2,\"res".to_vec(),
    ];
    let truncated = br#"{"jsonrpc":"2.0","id":2,"res"#.len();
    let mut framed = FramedRead::new(ChunkedReader(chunks.into()), JsonRpcCodec::new(256));
    let mut items = Vec::new();
    while let Some(item) = framed.next().await {
        items.push(item);
    }
    assert_eq!(items.len(), 6, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().as_ref().unwrap()["id"], 1);
    assert!(matches!(items[1], Ok(Err(LineError::InvalidJson { .. }))));
    assert!(matches!(items[2], Ok(Err(LineError::InvalidUtf8 { .. }))));
    assert!(matches!(
        items[3],
        Ok(Err(LineError::FrameTooLarge { limit: 256 }))
    ));
    assert_eq!(
        items[4].as_ref().unwrap().as_ref().unwrap()["method"],
        "notifications/progress"
    );
    assert!(
        matches!(items[5], Err(FramingError::TruncatedFrame { bytes, .. }) if bytes == truncated)
    );
}

#[tokio::test]
async fn encoded_messages_read_back_through_framed_read() {
    let messages = vec![
        json!({"jsonrpc": "2.0", "id": 123456789012345678901234567890_u128.to_string().parse::<Value>().unwrap(), "method": "ping"}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": "x\ny", "result": {"content": [{"type": "text", "text": "line1\nline2"}]}}),
    ];
    let mut codec = JsonRpcCodec::default();
    let mut out = BytesMut::new();
    for m in &messages {
        codec.encode(m, &mut out).unwrap();
    }
    let written = out.to_vec();
    assert_eq!(
        written.iter().filter(|b| **b == b'\n').count(),
        messages.len()
    );
    let decoded: Vec<Value> = FramedRead::new(&written[..], JsonRpcCodec::default())
        .map(|item| item.unwrap().unwrap())
        .collect()
        .await;
    assert_eq!(decoded, messages);
    assert!(
        String::from_utf8(written)
            .unwrap()
            .contains(r#""id":123456789012345678901234567890"#)
    );
}
