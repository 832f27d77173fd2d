//! Session ids: 128 bits from the operating system's random source, written
//! as 32 lowercase hex digits.
//!
//! Invariant: an id is never derived from a predictable source (no counter,
//! no seeded PRNG), and its text form is visible ASCII (0x21–0x7E) as the
//! transport requires. Parsing accepts exactly the form we issue, so a header
//! that could not have come from us is "not found" without a lookup.

use std::fmt;

use axum::http::{HeaderMap, HeaderValue};
use rand::TryRng;
use rand::rngs::SysRng;

use super::error::ProxyError;

/// Name of the session header (`Mcp-Session-Id` before 2025-11-25; headers are
/// case-insensitive).
pub const SESSION_ID_HEADER: &str = "mcp-session-id";

const BYTES: usize = 16;

/// An MCP session id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; BYTES]);

/// The OS random source failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct SessionIdError(String);

/// The header value is not an id this proxy could have issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed session id")]
pub struct MalformedSessionId;

impl SessionId {
    /// A fresh id from the OS random source.
    pub fn generate() -> Result<SessionId, SessionIdError> {
        let mut bytes = [0u8; BYTES];
        SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SessionIdError(e.to_string()))?;
        Ok(SessionId(bytes))
    }

    /// Parses the text form (32 hex digits; upper case is accepted).
    pub fn parse(text: &str) -> Result<SessionId, MalformedSessionId> {
        let raw = text.as_bytes();
        if raw.len() != BYTES * 2 {
            return Err(MalformedSessionId);
        }
        let mut bytes = [0u8; BYTES];
        for (out, pair) in bytes.iter_mut().zip(raw.chunks_exact(2)) {
            *out = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Ok(SessionId(bytes))
    }

    /// Reads the session header: `Ok(None)` when absent; a value this proxy
    /// could not have issued is `SessionNotFound` (404), the spec's signal to
    /// re-initialize.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<SessionId>, ProxyError> {
        let Some(value) = headers.get(SESSION_ID_HEADER) else {
            return Ok(None);
        };
        let text = value.to_str().map_err(|_| ProxyError::SessionNotFound)?;
        SessionId::parse(text.trim())
            .map(Some)
            .map_err(|_| ProxyError::SessionNotFound)
    }

    /// The header value to send back.
    pub fn to_header_value(self) -> HeaderValue {
        let mut buf = [0u8; BYTES * 2];
        self.write_hex(&mut buf);
        // Hex digits are always a valid header value.
        HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }

    fn write_hex(&self, out: &mut [u8; BYTES * 2]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
    }
}

fn hex_digit(c: u8) -> Result<u8, MalformedSessionId> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(MalformedSessionId),
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; BYTES * 2];
        self.write_hex(&mut buf);
        // Hex digits are ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: full ids are bearer-like secrets and must not land in logs.
        let full = self.to_string();
        write!(f, "SessionId({}…)", &full[..8])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_32_visible_ascii_hex_chars() {
        let id = SessionId::generate().unwrap();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_hexdigit() && (0x21..=0x7e).contains(&b))
        );
        assert_eq!(id.to_header_value().to_str().unwrap(), text);
    }

    #[test]
    fn generated_ids_round_trip_and_differ() {
        let ids: HashSet<SessionId> = (0..1000).map(|_| SessionId::generate().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(20) {
            assert_eq!(SessionId::parse(&id.to_string()).unwrap(), *id);
            assert_eq!(
                SessionId::parse(&id.to_string().to_uppercase()).unwrap(),
                *id
            );
        }
    }

    #[test]
    fn foreign_session_headers_are_not_found() {
        for bad in [
            "",
            "abc",
            "g0000000000000000000000000000000",
            "0000000000000000000000000000000000",
        ] {
            assert_eq!(SessionId::parse(bad), Err(MalformedSessionId), "{bad}");
            let mut h = HeaderMap::new();
            h.insert(SESSION_ID_HEADER, HeaderValue::from_str(bad).unwrap());
            assert!(matches!(
                SessionId::from_headers(&h),
                Err(ProxyError::SessionNotFound)
            ));
        }
        assert!(
            SessionId::from_headers(&HeaderMap::new())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn debug_form_does_not_reveal_the_whole_id() {
        let id = SessionId::generate().unwrap();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&id.to_string()));
    }
}
