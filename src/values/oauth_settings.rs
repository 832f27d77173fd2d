//! The OAuth 2.1 resource-server settings, as validated configuration: which
//! issuers are trusted, where their signing keys come from, the audience a
//! token must be issued for, and the scopes it must carry.
//!
//! Invariant: an [`OAuthSettings`] names at least one issuer, exactly one key
//! source, a non-empty audience and the public URL the metadata describes; a
//! key URL is `https` unless it is on loopback (keys fetched in clear over a
//! network could be replaced in transit).

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::public_url::PublicUrl;

/// Where the issuer's public keys (a JWK Set, RFC 7517 §5) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched over HTTP(S) at start, again when a token names an unknown
    /// key id (at most once per `min_refresh`) and when the keys are older
    /// than `max_age`.
    Url(Url),
    /// Read from a file at start, re-read on the same triggers.
    File(PathBuf),
}

/// The validated OAuth resource-server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// Accepted `iss` values, compared exactly as written (RFC 8414 §3.3).
    pub issuers: Vec<String>,
    /// Where the signing keys come from.
    pub jwks: JwksSource,
    /// The `aud` a token must contain (default: the public URL).
    pub audience: String,
    /// Scopes every token must carry (403 `insufficient_scope` otherwise).
    pub required_scopes: Vec<String>,
    /// The endpoint's public URL: the `resource` of the metadata.
    pub resource: PublicUrl,
    /// Least time between two key fetches caused by unknown key ids.
    pub min_refresh: Duration,
    /// Keys older than this are fetched again before use (so a key removed
    /// at the identity provider stops being accepted).
    pub max_age: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl OAuthSettings {
    /// The default [`OAuthSettings::leeway`]: small, but enough for hosts
    /// whose clocks are kept by NTP.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    /// The default [`OAuthSettings::max_age`].
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
}
