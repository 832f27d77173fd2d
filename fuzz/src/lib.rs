//! Shared driver for the framing fuzz targets: feeds bytes to
//! `JsonRpcCodec` exactly as `FramedRead` does and records what comes out,
//! asserting the buffer bound at every step.

use bytes::BytesMut;
use serde_json::Value;
use stdiopool::framing::{JsonRpcCodec, LineError};
use tokio_util::codec::Decoder;

/// One thing the decoder reported, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A decoded JSON value.
    Frame(Value),
    /// A recoverable per-line error.
    Line(LineError),
    /// A fatal error's text; it ends the stream.
    Fatal(String),
}

/// Decodes `chunks` as successive reads with a codec limited to `max`, then
/// EOF. Panics if the buffer ever holds more than `max + 1` bytes between
/// reads, or more than that plus the read just appended.
pub fn drive(max: usize, chunks: &[&[u8]]) -> Vec<Outcome> {
    let mut codec = JsonRpcCodec::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        assert!(buf.len() <= max.saturating_add(1).saturating_add(chunk.len()));
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Ok(v))) => out.push(Outcome::Frame(v)),
                Ok(Some(Err(e))) => out.push(Outcome::Line(e)),
                Ok(None) => break,
                Err(e) => panic!("decode (not at EOF) returned a fatal error: {e}"),
            }
        }
        assert!(
            buf.len() <= max.saturating_add(1),
            "buffer holds {} bytes, limit {max}",
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
    assert!(buf.is_empty(), "EOF left {} bytes behind", buf.len());
    out
}
