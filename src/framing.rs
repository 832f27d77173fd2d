//! Newline-delimited JSON framing for MCP's stdio transport: a
//! `tokio_util::codec` decoder and encoder.
//!
//! Everything a child process writes on stdout passes through
//! [`JsonRpcCodec`], so the decoder is *total* and *bounded*:
//!
//! - every input byte sequence yields a well-defined sequence of items — a
//!   JSON value per non-blank line, or a recoverable [`LineError`] for a line
//!   that is overlong, not UTF-8 or not JSON — and never a panic;
//! - the bytes it holds between calls never exceed `max_frame_bytes + 1`
//!   (so a `FramedRead` buffer stays under the limit plus one read), because an
//!   overlong line is reported once and then discarded as it arrives;
//! - the items depend only on the bytes, not on how they were split into
//!   reads (*chunking invariance*), and each byte is searched for a newline
//!   once (no quadratic rescan when a large frame trickles in);
//! - an error on one line never touches the lines around it.
//!
//! `FramedRead` stops at the first `Err` a decoder returns (tokio issue 3976),
//! so per-line problems are *items* (`Ok(Some(Err(LineError)))`), and
//! [`FramingError`] is kept for what really ends the stream: an I/O error or
//! EOF in the middle of a frame.
//!
//! The encoder writes compact JSON and one `\n`; it checks the bytes it wrote
//! for a newline, so a message can never span two lines even if a
//! hand-made `serde_json::Number` carries one.
//!
//! See `docs/FRAMING.md` for the reasoning behind each property.

use std::fmt::Write as _;
use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

/// Default largest frame (line content, without its line terminator) the
/// decoder accepts: 16 MiB.
///
/// MCP tool results carry base64 images, audio and embedded resources inline,
/// and base64 inflates by 4/3: a 10 MiB screenshot is a ~13.4 MiB line. 16 MiB
/// passes such real output while still bounding what one misbehaving server
/// can make the proxy hold per connection (the buffer grows only as far as
/// the frames it actually receives; nothing is preallocated).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// How many bytes of an offending line an error message quotes.
const SNIPPET_BYTES: usize = 64;

/// A problem with one line. Decoding goes on with the next line.
///
/// The `Display` text is written to be shown to a client inside a JSON-RPC
/// error message: it names the problem and quotes at most a short, escaped
/// snippet of the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line's content exceeded the frame limit; it was discarded without
    /// being buffered, and decoding resumed after its newline.
    #[error("message exceeds the {limit}-byte frame limit and was discarded")]
    FrameTooLarge {
        /// The limit in force (`max_frame_bytes`).
        limit: usize,
    },
    /// The line is not valid UTF-8 (MCP's stdio transport is UTF-8 only).
    #[error("line is not valid UTF-8: {snippet}")]
    InvalidUtf8 {
        /// The start of the line, quoted, with bad bytes as `\xNN`.
        snippet: String,
    },
    /// The line is UTF-8 but not one JSON value — typically a server logging
    /// to stdout instead of stderr.
    #[error("line is not valid JSON ({reason}): {snippet}")]
    InvalidJson {
        /// The start of the line, quoted and escaped.
        snippet: String,
        /// What the JSON parser objected to, with its position.
        reason: String,
    },
}

/// A fatal error: the stream cannot go on (decoder) or a message could not be
/// written (encoder).
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// Reading or writing the underlying pipe failed.
    #[error("I/O error on the JSON-RPC stream: {0}")]
    Io(#[from] io::Error),
    /// The stream ended after a partial line with no terminating newline
    /// (e.g. the server died while writing a message).
    #[error(
        "stream ended inside a message: {bytes} bytes without a terminating newline: {snippet}"
    )]
    TruncatedFrame {
        /// How many bytes the unfinished line held.
        bytes: usize,
        /// The start of the unfinished line, quoted and escaped.
        snippet: String,
    },
    /// `serde_json` could not serialize the message.
    #[error("cannot serialize JSON-RPC message: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The serialized message contained a raw newline, so it was not written
    /// (it would have split into two frames). Defence in depth: serde_json
    /// escapes newlines in strings and currently refuses malformed numbers,
    /// but a `Number` can be built from any text
    /// (`Number::from_string_unchecked`), and the one-line guarantee should
    /// not rest on nobody doing that.
    #[error("serialized message contains a raw newline and was not written")]
    EmbeddedNewline,
}

/// Quotes the start of `bytes` for an error message: at most
/// [`SNIPPET_BYTES`] input bytes, printable text kept, control and
/// non-printable characters escaped Rust-style, invalid UTF-8 as `\xNN`, and
/// the full length noted when cut. The result is bounded (< 1 KiB) whatever
/// the input.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    let cap = bytes.len().min(SNIPPET_BYTES);
    let mut end = cap;
    // Cut on a character boundary when the input is UTF-8 (a UTF-8 character
    // has at most 3 continuation bytes), so a cut snippet does not end in a
    // spurious `\xNN`.
    while end > 0 && end < bytes.len() && cap - end < 3 && bytes[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 16);
    out.push('"');
    for chunk in bytes[..end].utf8_chunks() {
        for c in chunk.valid().chars() {
            out.extend(c.escape_debug());
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    if end < bytes.len() {
        let _ = write!(out, "… ({} bytes)", bytes.len());
    }
    out
}

/// Whether a line is only JSON whitespace (the `\n` is already gone). Such a
/// line carries no message; servers do emit them (a stray `\n\n`), so they
/// are skipped rather than reported.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// What [`LineScanner::scan`] found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// A complete non-blank line: its content is `buf[..len]` (terminator
    /// stripped); `consumed` bytes, terminator included, belong to it.
    Line { len: usize, consumed: usize },
    /// A line over the limit was found; the bytes seen of it are gone, and the
    /// rest will be discarded as it arrives.
    TooLarge,
    /// No complete line yet; call again with more bytes.
    NeedMore,
}

/// The line-splitting state machine shared by both codecs.
///
/// State between calls: `next_index` (how far the current line has been
/// searched for `\n`) and `discarding` (the front of the buffer is the tail of
/// an overlong line). The search window is `max + 2` bytes: content of `max`
/// bytes, an optional `\r`, then the `\n`. A line whose `\n` is not in the
/// window is too large whatever comes next, so the decision depends on the
/// bytes alone and never on where a read ended.
#[derive(Debug, Clone)]
struct LineScanner {
    max_frame_bytes: usize,
    next_index: usize,
    discarding: bool,
}

impl LineScanner {
    fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes,
            next_index: 0,
            discarding: false,
        }
    }

    fn reset(&mut self) {
        self.next_index = 0;
        self.discarding = false;
    }

    fn scan(&mut self, buf: &mut BytesMut) -> Scan {
        loop {
            if self.discarding {
                match memchr::memchr(b'\n', buf) {
                    Some(newline) => {
                        buf.advance(newline + 1);
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        // Nothing of an overlong line is kept: this is what
                        // bounds memory whatever the input.
                        buf.clear();
                        return Scan::NeedMore;
                    }
                }
            }
            let window = self.max_frame_bytes.saturating_add(2);
            let read_to = buf.len().min(window);
            // `next_index <= read_to` always holds: it is only ever set to a
            // previous `read_to`, and the buffer only grows between calls.
            let searched = self.next_index.min(read_to);
            match memchr::memchr(b'\n', &buf[searched..read_to]) {
                Some(offset) => {
                    let newline = searched + offset;
                    self.next_index = 0;
                    let len = if newline > 0 && buf[newline - 1] == b'\r' {
                        newline - 1
                    } else {
                        newline
                    };
                    if len > self.max_frame_bytes {
                        buf.advance(newline + 1);
                        return Scan::TooLarge;
                    }
                    if is_blank(&buf[..len]) {
                        buf.advance(newline + 1);
                        continue;
                    }
                    return Scan::Line {
                        len,
                        consumed: newline + 1,
                    };
                }
                None if buf.len() >= window => {
                    buf.advance(read_to);
                    self.next_index = 0;
                    self.discarding = true;
                    return Scan::TooLarge;
                }
                None => {
                    self.next_index = read_to;
                    return Scan::NeedMore;
                }
            }
        }
    }

    /// At EOF, after `scan` returned `NeedMore`: whatever is left is a line
    /// without its newline. Blank leftovers and the tail of an already
    /// reported overlong line are dropped silently.
    fn finish(&mut self, buf: &mut BytesMut) -> Result<(), FramingError> {
        self.reset();
        let rest = buf.split();
        if is_blank(&rest) {
            Ok(())
        } else {
            Err(FramingError::TruncatedFrame {
                bytes: rest.len(),
                snippet: snippet(&rest),
            })
        }
    }
}

/// Parses one line's content into a JSON value.
pub(crate) fn parse_line(line: &[u8]) -> Result<Value, LineError> {
    // UTF-8 is checked first so the two failures stay distinguishable; after
    // it `from_str` skips serde_json's own per-string UTF-8 validation.
    let text = std::str::from_utf8(line).map_err(|_| LineError::InvalidUtf8 {
        snippet: snippet(line),
    })?;
    serde_json::from_str(text).map_err(|e| LineError::InvalidJson {
        snippet: snippet(line),
        reason: e.to_string(),
    })
}

/// The stdio JSON-RPC codec: decodes one JSON value per non-blank line,
/// encodes one compact JSON value plus `\n`.
///
/// ```
/// use bytes::BytesMut;
/// use stdiopool::framing::{JsonRpcCodec, LineError};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = JsonRpcCodec::new(1024);
/// let mut buf = BytesMut::from(&b"{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}\r\nServer started\n"[..]);
/// let first = codec.decode(&mut buf).unwrap().unwrap().unwrap();
/// assert_eq!(first["method"], "ping");
/// let second = codec.decode(&mut buf).unwrap().unwrap();
/// assert!(matches!(second, Err(LineError::InvalidJson { .. })));
/// assert!(codec.decode(&mut buf).unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct JsonRpcCodec {
    scanner: LineScanner,
}

impl JsonRpcCodec {
    /// A codec that accepts lines of at most `max_frame_bytes` bytes of
    /// content (line terminator not counted).
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            scanner: LineScanner::new(max_frame_bytes),
        }
    }

    /// The frame limit this codec enforces.
    pub fn max_frame_bytes(&self) -> usize {
        self.scanner.max_frame_bytes
    }
}

impl Default for JsonRpcCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Decoder for JsonRpcCodec {
    type Item = Result<Value, LineError>;
    type Error = FramingError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, FramingError> {
        Ok(match self.scanner.scan(buf) {
            Scan::NeedMore => None,
            Scan::TooLarge => Some(Err(LineError::FrameTooLarge {
                limit: self.scanner.max_frame_bytes,
            })),
            Scan::Line { len, consumed } => {
                let item = parse_line(&buf[..len]);
                buf.advance(consumed);
                Some(item)
            }
        })
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, FramingError> {
        match self.decode(buf)? {
            Some(item) => Ok(Some(item)),
            None => self.scanner.finish(buf).map(|()| None),
        }
    }
}

impl Encoder<&Value> for JsonRpcCodec {
    type Error = FramingError;

    fn encode(&mut self, item: &Value, dst: &mut BytesMut) -> Result<(), FramingError> {
        encode_into(item, dst)
    }
}

/// Appends `item` as one line (compact JSON, then `\n`) to `dst`; on error
/// `dst` is left as it was. What [`JsonRpcCodec`] encodes, for any
/// serializable message (a caller that writes a line itself need not build
/// a `Value` first).
pub fn encode_into<T: serde::Serialize + ?Sized>(
    item: &T,
    dst: &mut BytesMut,
) -> Result<(), FramingError> {
    let start = dst.len();
    if let Err(e) = serde_json::to_writer(dst.writer(), item) {
        dst.truncate(start);
        return Err(FramingError::Serialize(e));
    }
    if memchr::memchr(b'\n', &dst[start..]).is_some() {
        dst.truncate(start);
        return Err(FramingError::EmbeddedNewline);
    }
    dst.put_u8(b'\n');
    Ok(())
}

/// [`encode_into`] a fresh buffer: the line, ready to write.
pub fn encode_line<T: serde::Serialize + ?Sized>(item: &T) -> Result<Bytes, FramingError> {
    // Most messages (requests, notifications, answers) are short.
    let mut line = BytesMut::with_capacity(256);
    encode_into(item, &mut line)?;
    Ok(line.freeze())
}

impl Encoder<Value> for JsonRpcCodec {
    type Error = FramingError;

    fn encode(&mut self, item: Value, dst: &mut BytesMut) -> Result<(), FramingError> {
        self.encode(&item, dst)
    }
}

/// The framing alone, without JSON parsing: yields each non-blank line's
/// content (terminator stripped) as `Bytes`, with the same limits, blank-line
/// skipping, overlong-line discarding and EOF reporting as [`JsonRpcCodec`].
///
/// For callers that forward frames without looking inside them, and the
/// baseline the framing benchmark measures.
#[derive(Debug, Clone)]
pub struct RawLineCodec {
    scanner: LineScanner,
}

impl RawLineCodec {
    /// A codec that accepts lines of at most `max_frame_bytes` bytes of content.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            scanner: LineScanner::new(max_frame_bytes),
        }
    }

    /// The frame limit this codec enforces.
    pub fn max_frame_bytes(&self) -> usize {
        self.scanner.max_frame_bytes
    }
}

impl Default for RawLineCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Decoder for RawLineCodec {
    type Item = Result<Bytes, LineError>;
    type Error = FramingError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, FramingError> {
        Ok(match self.scanner.scan(buf) {
            Scan::NeedMore => None,
            Scan::TooLarge => Some(Err(LineError::FrameTooLarge {
                limit: self.scanner.max_frame_bytes,
            })),
            Scan::Line { len, consumed } => {
                let mut line = buf.split_to(consumed);
                line.truncate(len);
                Some(Ok(line.freeze()))
            }
        })
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, FramingError> {
        match self.decode(buf)? {
            Some(item) => Ok(Some(item)),
            None => self.scanner.finish(buf).map(|()| None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn snippet_is_bounded_and_escaped() {
        let long = "é".repeat(1000);
        let s = snippet(long.as_bytes());
        assert!(s.len() < 200, "{s}");
        assert!(s.ends_with("… (2000 bytes)"), "{s}");
        assert!(!s.contains("\\x"), "cut inside a character: {s}");
        assert_eq!(snippet(b"a\"b\n\xff"), "\"a\\\"b\\n\\xff\"");
    }

    #[test]
    fn scanner_keeps_at_most_limit_plus_one_byte_between_calls() {
        let mut scanner = LineScanner::new(4);
        let mut buf = BytesMut::from(&b"abcd\r"[..]);
        assert_eq!(scanner.scan(&mut buf), Scan::NeedMore);
        assert_eq!(buf.len(), 5);
        buf.extend_from_slice(b"\n");
        assert_eq!(
            scanner.scan(&mut buf),
            Scan::Line {
                len: 4,
                consumed: 6
            }
        );
    }
}
