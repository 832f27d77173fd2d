//! Session ids: what this proxy mints and what it accepts in `Mcp-Session-Id`.
//!
//! Two forms, both led by the minting instance's id (`--instance-id`) so a
//! balancer can route on the prefix and a misrouted request can name its
//! owner:
//!
//! - **local** `<instance>.<32 hex digits>`: 128 bits from the operating
//!   system's random source; the session lives in that instance's store;
//! - **signed** `<instance>.<payload>.<mac>` (pooled mode with
//!   `--session-key-file`): base64url parts, made and checked by
//!   `proxy::mcp::session_token`; any instance with the key accepts it.
//!
//! Invariants: the random part is never derived from a predictable source
//! (no counter, no seeded PRNG); the text form is visible ASCII (0x21–0x7E)
//! as the transport requires and at most [`MAX_LEN`] bytes; parsing accepts
//! only these shapes, so a header that could not have come from us is "not
//! found" without a lookup. Parsing checks shape only: a signed id is
//! trusted only after its MAC is verified.

use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use rand::TryRng;
use rand::rngs::SysRng;

use super::error::ProxyError;
use crate::values::InstanceId;
use crate::values::instance_id::is_instance_byte;

/// Name of the session header (`Mcp-Session-Id` before 2025-11-25; headers are
/// case-insensitive).
pub const SESSION_ID_HEADER: &str = "mcp-session-id";

/// Longest id accepted (signed ids carry a few capabilities: well under this).
pub const MAX_LEN: usize = 1024;

const RANDOM_BYTES: usize = 16;

/// An MCP session id (its text form; see the module docs for the shapes).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

/// The OS random source failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct SessionIdError(String);

impl SessionIdError {
    /// The random source's own error, as text.
    pub(crate) fn new(reason: String) -> SessionIdError {
        SessionIdError(reason)
    }
}

/// The header value is not an id this proxy could have issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed session id")]
pub struct MalformedSessionId;

impl SessionId {
    /// A fresh local id owned by `instance`.
    pub fn generate_for(instance: &InstanceId) -> Result<SessionId, SessionIdError> {
        let mut bytes = [0u8; RANDOM_BYTES];
        SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SessionIdError(e.to_string()))?;
        let mut text = String::with_capacity(instance.as_str().len() + 1 + RANDOM_BYTES * 2);
        text.push_str(instance.as_str());
        text.push('.');
        for b in bytes {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Ok(SessionId(text.into()))
    }

    /// A fresh local id for tests that need any valid id.
    #[cfg(test)]
    pub(crate) fn generate() -> Result<SessionId, SessionIdError> {
        let test = InstanceId::parse("test").map_err(|e| SessionIdError(e.to_string()))?;
        SessionId::generate_for(&test)
    }

    /// A signed id from its parts (`session_token` made and MACed them).
    pub(crate) fn signed(instance: &InstanceId, payload: &str, mac: &str) -> SessionId {
        SessionId(format!("{instance}.{payload}.{mac}").into())
    }

    /// Parses the text form. The hex of a local id may be upper case; it is
    /// kept lower case, so both spellings name one session.
    pub fn parse(text: &str) -> Result<SessionId, MalformedSessionId> {
        if text.len() > MAX_LEN {
            return Err(MalformedSessionId);
        }
        let mut parts = text.split('.');
        let (Some(instance), Some(second)) = (parts.next(), parts.next()) else {
            return Err(MalformedSessionId);
        };
        let third = parts.next();
        if parts.next().is_some() || !valid_instance(instance) {
            return Err(MalformedSessionId);
        }
        match third {
            None => {
                if second.len() != RANDOM_BYTES * 2
                    || !second.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(MalformedSessionId);
                }
                // The ids this proxy mints are lowercase already: only an
                // id a client changed the case of is rebuilt.
                if second.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Ok(SessionId(
                        format!("{instance}.{}", second.to_ascii_lowercase()).into(),
                    ));
                }
                Ok(SessionId(text.into()))
            }
            Some(mac) => {
                if !is_base64url(second) || !is_base64url(mac) {
                    return Err(MalformedSessionId);
                }
                Ok(SessionId(text.into()))
            }
        }
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
    pub fn to_header_value(&self) -> HeaderValue {
        // Visible ASCII by construction, so always a valid header value.
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }

    /// The instance that minted the id (the prefix before the first `.`).
    pub fn owner(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// Whether this is a signed id (three parts), as opposed to a local one.
    pub fn is_signed(&self) -> bool {
        self.0.split('.').nth(2).is_some()
    }

    /// A signed id's `(instance, payload, mac)`, as text.
    pub(crate) fn signed_parts(&self) -> Option<(&str, &str, &str)> {
        let mut parts = self.0.split('.');
        let (instance, payload, mac) = (parts.next()?, parts.next()?, parts.next()?);
        Some((instance, payload, mac))
    }

    /// The whole id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_instance(text: &str) -> bool {
    !text.is_empty() && text.len() <= InstanceId::MAX_LEN && text.bytes().all(is_instance_byte)
}

fn is_base64url(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The owner and 8 characters of the secret part only: full ids are
        // bearer-like secrets and must not land in logs.
        let rest = self.0.rsplit('.').next().unwrap_or_default();
        let shown: String = rest.chars().take(8).collect();
        let kind = if self.is_signed() { "signed " } else { "" };
        write!(f, "SessionId({kind}{}.…{shown}…)", self.owner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashSet;

    fn web1() -> InstanceId {
        InstanceId::parse("web-1").unwrap()
    }

    #[test]
    fn generated_ids_are_the_instance_and_32_hex_chars_all_visible_ascii() {
        let id = SessionId::generate_for(&web1()).unwrap();
        let text = id.to_string();
        let (owner, hex) = text.split_once('.').unwrap();
        assert_eq!(owner, "web-1");
        assert_eq!(id.owner(), "web-1");
        assert!(!id.is_signed());
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(text.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(id.to_header_value().to_str().unwrap(), text);
    }

    #[test]
    fn generated_ids_round_trip_and_differ() {
        let ids: HashSet<SessionId> = (0..1000)
            .map(|_| SessionId::generate_for(&web1()).unwrap())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(20) {
            assert_eq!(&SessionId::parse(&id.to_string()).unwrap(), id);
            let (owner, hex) = id.as_str().split_once('.').unwrap();
            let upper = format!("{owner}.{}", hex.to_uppercase());
            assert_eq!(&SessionId::parse(&upper).unwrap(), id);
        }
    }

    #[test]
    fn signed_shapes_parse_and_keep_their_case() {
        let id = SessionId::parse("web-2.eyJ2IjoxfQ.AbC-_9").unwrap();
        assert!(id.is_signed());
        assert_eq!(id.owner(), "web-2");
        assert_eq!(id.signed_parts(), Some(("web-2", "eyJ2IjoxfQ", "AbC-_9")));
        assert_eq!(id.as_str(), "web-2.eyJ2IjoxfQ.AbC-_9");
    }

    #[test]
    fn foreign_session_headers_are_not_found() {
        let long = format!("a.{}.b", "x".repeat(MAX_LEN));
        for bad in [
            "",
            "abc",
            "00000000000000000000000000000000",
            "web.g0000000000000000000000000000000",
            "web.0000000000000000000000000000000000",
            ".00000000000000000000000000000000",
            "w b.00000000000000000000000000000000",
            "web.abc.d=f",
            "web..x",
            "web.a.b.c",
            long.as_str(),
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
        let id = SessionId::generate_for(&web1()).unwrap();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(id.as_str().split_once('.').unwrap().1));
        assert!(dbg.contains("web-1"));
        let signed = SessionId::parse("web-2.eyJ2IjoxfQ.AbCdEfGhIjKlMnOp").unwrap();
        let dbg = format!("{signed:?}");
        assert!(
            !dbg.contains("eyJ2IjoxfQ") && !dbg.contains("AbCdEfGhIjKlMnOp"),
            "{dbg}"
        );
    }
}
