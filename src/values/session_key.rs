//! The key instances of one deployment share to sign pooled-mode session
//! ids (`--session-key-file`), as a validated secret.
//!
//! Invariant: a [`SessionKey`] holds at least [`SessionKey::MIN_LEN`] bytes
//! of visible ASCII, read and trimmed like the bearer token file, and nothing
//! prints it: `Debug` shows only its length and there is no `Display`.

use std::fmt;

/// The shared signing key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(Vec<u8>);

/// The key file's contents cannot be a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSessionKey {
    /// Shorter than [`SessionKey::MIN_LEN`] after trimming.
    #[error("the key is {0} bytes; at least 32 are needed (e.g. `openssl rand -base64 48 > FILE`)")]
    TooShort(usize),
    /// Holds whitespace or a non-visible / non-ASCII character.
    #[error("the key holds a character other than visible ASCII (0x21-0x7E)")]
    NotVisibleAscii,
}

impl SessionKey {
    /// Fewest bytes accepted: 32 bytes of base64 carry 192 bits, beyond guessing.
    pub const MIN_LEN: usize = 32;

    /// A key from the contents of a key file: surrounding whitespace is
    /// trimmed (as for the token file); what remains must be at least
    /// [`SessionKey::MIN_LEN`] bytes of visible ASCII.
    pub fn from_file_contents(contents: &str) -> Result<SessionKey, BadSessionKey> {
        let key = contents.trim();
        if !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(BadSessionKey::NotVisibleAscii);
        }
        if key.len() < Self::MIN_LEN {
            return Err(BadSessionKey::TooShort(key.len()));
        }
        Ok(SessionKey(key.as_bytes().to_vec()))
    }

    /// The key's bytes, for the MAC and nothing else.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_are_trimmed_and_checked() {
        let text = format!("  {}\n", "k".repeat(40));
        assert_eq!(
            SessionKey::from_file_contents(&text)
                .unwrap()
                .expose()
                .len(),
            40
        );
        assert_eq!(
            SessionKey::from_file_contents("short\n"),
            Err(BadSessionKey::TooShort(5))
        );
        assert_eq!(
            SessionKey::from_file_contents(&format!("{} {}", "a".repeat(20), "b".repeat(20))),
            Err(BadSessionKey::NotVisibleAscii)
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = "s3cr3t-".repeat(6);
        let key = SessionKey::from_file_contents(&secret).unwrap();
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("42 bytes redacted"), "{shown}");
    }
}
