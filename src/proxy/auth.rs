//! Optional bearer-token authentication for the MCP endpoint.
//!
//! Invariant: a request without the right `Authorization: Bearer <token>`
//! gets 401 with `WWW-Authenticate: Bearer` before any handler runs, so
//! nothing reaches a child. The comparison takes time that depends only on the
//! length of the configured token, never on how much of a guess was right.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConstantTimeEq};

use super::error::{AuthFailure, ProxyError};

/// The configured secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(Vec<u8>);

/// The token cannot be sent in an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadToken {
    /// Nothing left after trimming.
    #[error("the token is empty")]
    Empty,
    /// Holds whitespace or a non-visible / non-ASCII character.
    #[error("the token holds a character other than visible ASCII (0x21-0x7E)")]
    NotVisibleAscii,
}

impl BearerToken {
    /// A token from the contents of a token file: surrounding whitespace
    /// (the trailing newline editors add) is trimmed; what remains must be
    /// non-empty visible ASCII.
    pub fn from_file_contents(contents: &str) -> Result<BearerToken, BadToken> {
        let token = contents.trim();
        if token.is_empty() {
            return Err(BadToken::Empty);
        }
        if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(BadToken::NotVisibleAscii);
        }
        Ok(BearerToken(token.as_bytes().to_vec()))
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let same_len = presented.len() == self.0.len();
        // Compare against ourselves when lengths differ so the work done is
        // the same either way; the length check decides the result.
        let other = if same_len { presented } else { &self.0[..] };
        let equal: Choice = self.0.ct_eq(other) & Choice::from(u8::from(same_len));
        equal.into()
    }

    /// Checks the `Authorization` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ProxyError::Unauthorized(AuthFailure::Missing));
        };
        let raw = value.as_bytes();
        let Some((scheme, rest)) = split_scheme(raw) else {
            return Err(ProxyError::Unauthorized(AuthFailure::Invalid));
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return Err(ProxyError::Unauthorized(AuthFailure::Invalid));
        }
        if self.matches(rest.trim_ascii()) {
            Ok(())
        } else {
            Err(ProxyError::Unauthorized(AuthFailure::Invalid))
        }
    }
}

fn split_scheme(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = raw.iter().position(|&b| b == b' ')?;
    Some((&raw[..space], &raw[space + 1..]))
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken(<{} bytes redacted>)", self.0.len())
    }
}

/// Middleware: 401 unless the request carries the configured bearer token.
pub async fn require_bearer(
    State(token): State<Arc<BearerToken>>,
    request: Request,
    next: Next,
) -> Response {
    match token.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn token_file_contents_are_trimmed() {
        let t = BearerToken::from_file_contents("s3cret\n").unwrap();
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cret\n"));
        assert_eq!(BearerToken::from_file_contents(" \n"), Err(BadToken::Empty));
        assert_eq!(
            BearerToken::from_file_contents("a b"),
            Err(BadToken::NotVisibleAscii)
        );
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = BearerToken::from_file_contents("abcdef").unwrap();
        assert!(t.matches(b"abcdef"));
        for wrong in [&b""[..], b"abcde", b"abcdefg", b"abcdeF", b"xbcdef"] {
            assert!(!t.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn authorization_header_forms() {
        let t = BearerToken::from_file_contents("tok").unwrap();
        assert!(t.check(&with_auth("Bearer tok")).is_ok());
        assert!(t.check(&with_auth("bearer tok")).is_ok());
        assert!(matches!(
            t.check(&HeaderMap::new()),
            Err(ProxyError::Unauthorized(AuthFailure::Missing))
        ));
        for bad in ["Bearer nope", "Basic tok", "Bearertok", "tok"] {
            assert!(
                matches!(
                    t.check(&with_auth(bad)),
                    Err(ProxyError::Unauthorized(AuthFailure::Invalid))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let t = BearerToken::from_file_contents("hunter2").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
