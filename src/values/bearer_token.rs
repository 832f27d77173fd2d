//! The bearer token the MCP endpoint may require, as a validated secret.
//!
//! Invariant: a [`BearerToken`] is non-empty visible ASCII (so it can be sent
//! in an `Authorization` header), `Debug` never shows it, and comparing a
//! guess against it takes time that depends only on the token's length,
//! never on how much of the guess was right. Reading the header is the
//! transport's job (`proxy::transport::auth`).

use std::fmt;

use subtle::{Choice, ConstantTimeEq};

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
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
    fn debug_does_not_print_the_secret() {
        let t = BearerToken::from_file_contents("hunter2").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
