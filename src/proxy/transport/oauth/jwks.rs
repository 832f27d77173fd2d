//! The issuer's public signing keys: a JWK Set loaded from a URL or a file,
//! kept in memory, and loaded again when a token names a key id the set does
//! not hold (key rotation) or when the set has grown old (key removal).
//!
//! Invariant: only asymmetric keys are kept (RSA, EC P-256/P-384, Ed25519);
//! an `oct` (shared-secret) key in the set is dropped, so a public key can
//! never be used as an HMAC secret. Reloads caused by unknown key ids happen
//! at most once per `min_refresh`, so a stream of tokens with made-up key
//! ids cannot turn the proxy into a flood against the identity provider;
//! concurrent lookups that need a reload share one. Key material never
//! reaches a log line.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

use crate::values::JwksSource;

/// Largest JWK Set accepted (real ones are a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// A key fetch that takes longer than this has failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The HTTP request failed or was not answered with 200.
    #[error("fetching the JWK Set from {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The file could not be read.
    #[error("reading the JWK Set file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The document is not a JWK Set.
    #[error("the JWK Set from {origin} is not valid: {reason}")]
    Parse {
        /// The URL or file.
        origin: String,
        /// Why.
        reason: String,
    },
    /// The set holds no key this proxy can verify with.
    #[error("the JWK Set from {0} holds no usable RSA, EC or Ed25519 signing key")]
    NoUsableKey(String),
}

/// One verification key of the set.
#[derive(Clone)]
pub(super) struct VerifyingKey {
    pub(super) kid: Option<String>,
    /// The `alg` the set pins the key to, if any.
    pub(super) alg: Option<Algorithm>,
    pub(super) key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Whether this key may verify a token signed with `alg`.
    pub(super) fn fits(&self, alg: Algorithm) -> bool {
        self.key.family() == alg.family() && self.alg.is_none_or(|pinned| pinned == alg)
    }
}

#[derive(Debug)]
struct Loaded {
    keys: Arc<[VerifyingKey]>,
    at: Instant,
    /// Bumped on every load attempt, so a task that waited for a reload can
    /// tell that another one already tried.
    generation: u64,
}

/// The cached key set and how to load it again.
#[derive(Debug)]
pub struct Jwks {
    source: JwksSource,
    client: reqwest::Client,
    loaded: RwLock<Loaded>,
    /// Held while loading; holds when the last reload for an unknown key id began.
    reload: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
    max_age: Duration,
}

impl Jwks {
    /// Loads the set once (start-up fails if it cannot be loaded).
    pub async fn load(
        source: JwksSource,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Result<Jwks, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| JwksError::Fetch {
                url: describe(&source),
                reason: e.to_string(),
            })?;
        let keys = read_set(&client, &source).await?;
        Ok(Jwks {
            source,
            client,
            loaded: RwLock::new(Loaded {
                keys,
                at: Instant::now(),
                generation: 0,
            }),
            reload: tokio::sync::Mutex::new(None),
            min_refresh,
            max_age,
        })
    }

    /// The keys that may verify a token with key id `kid` signed with `alg`:
    /// the one with that id, or, when the token names none, every key that
    /// fits `alg`. Reloads the set first when it is older than `max_age`, or
    /// (rate-limited) when no key matches.
    pub(super) async fn keys_for(&self, kid: Option<&str>, alg: Algorithm) -> Vec<VerifyingKey> {
        let (keys, at, generation) = self.snapshot();
        if at.elapsed() >= self.max_age {
            self.reload(generation, false).await;
        } else {
            let found = matching(&keys, kid, alg);
            if !found.is_empty() {
                return found;
            }
            self.reload(generation, true).await;
        }
        matching(&self.snapshot().0, kid, alg)
    }

    fn snapshot(&self) -> (Arc<[VerifyingKey]>, Instant, u64) {
        let guard = self
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (guard.keys.clone(), guard.at, guard.generation)
    }

    /// Loads the set again unless a load newer than `seen` happened while
    /// waiting, or (`rate_limited`) the last unknown-key reload was less
    /// than `min_refresh` ago. A failed load keeps the old keys.
    async fn reload(&self, seen: u64, rate_limited: bool) {
        let mut last = self.reload.lock().await;
        if self.snapshot().2 != seen {
            return;
        }
        if rate_limited && last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            tracing::debug!("unknown key id: JWK Set reload skipped (rate limit)");
            return;
        }
        if rate_limited {
            *last = Some(Instant::now());
        }
        match read_set(&self.client, &self.source).await {
            Ok(keys) => {
                let mut loaded = self
                    .loaded
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                loaded.keys = keys;
                loaded.at = Instant::now();
                loaded.generation += 1;
                tracing::info!(keys = loaded.keys.len(), "OAuth: JWK Set reloaded");
            }
            Err(e) => {
                // Keep serving with the keys we have; try again after max_age
                // or the next rate-limit window. Counted as a load, so the
                // requests that waited for this one do not each try again.
                let mut loaded = self
                    .loaded
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                loaded.at = Instant::now();
                loaded.generation += 1;
                tracing::warn!(error = %e, "OAuth: JWK Set reload failed; keeping the keys loaded before");
            }
        }
    }
}

fn matching(keys: &[VerifyingKey], kid: Option<&str>, alg: Algorithm) -> Vec<VerifyingKey> {
    keys.iter()
        .filter(|k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            None => true,
        })
        .filter(|k| k.fits(alg))
        .cloned()
        .collect()
}

fn describe(source: &JwksSource) -> String {
    match source {
        JwksSource::Url(url) => url.to_string(),
        JwksSource::File(path) => path.display().to_string(),
    }
}

async fn read_set(
    client: &reqwest::Client,
    source: &JwksSource,
) -> Result<Arc<[VerifyingKey]>, JwksError> {
    let origin = describe(source);
    let bytes = match source {
        JwksSource::Url(url) => fetch(client, url).await?,
        JwksSource::File(path) => {
            tokio::fs::read(path)
                .await
                .map_err(|source| JwksError::Read {
                    path: origin.clone(),
                    source,
                })?
        }
    };
    parse_set(&bytes, &origin)
}

async fn fetch(client: &reqwest::Client, url: &url::Url) -> Result<Vec<u8>, JwksError> {
    let fail = |reason: String| JwksError::Fetch {
        url: url.to_string(),
        reason,
    };
    let mut response = client
        .get(url.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwk-set+json",
        )
        .send()
        .await
        .map_err(|e| fail(with_causes(&e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(with_causes(&e)))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(fail(format!("larger than {MAX_JWKS_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `e` and its causes (reqwest's own message omits why the connection failed).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The usable keys of a JWK Set document (module invariant: no `oct` keys).
pub(super) fn parse_set(bytes: &[u8], origin: &str) -> Result<Arc<[VerifyingKey]>, JwksError> {
    // Each key separately: one key of a type this crate does not know must
    // not make the whole set unusable.
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(bytes).map_err(|e| JwksError::Parse {
        origin: origin.to_owned(),
        reason: e.to_string(),
    })?;
    let mut keys = Vec::new();
    for value in raw.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if let Some(key) = usable(&jwk) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey(origin.to_owned()));
    }
    Ok(keys.into())
}

fn usable(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return None;
    }
    // A key published for encryption only is not a signing key.
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| !matches!(u, jsonwebtoken::jwk::PublicKeyUse::Signature))
    {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        // An `alg` that is not a signature algorithm we verify: not our key.
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if key.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return None;
    }
    Some(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const ED: &str = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"}"#;

    #[test]
    fn shared_secret_and_encryption_keys_are_dropped() {
        let set = format!(
            r#"{{"keys":[{ED},
                {{"kty":"oct","k":"c2VjcmV0","kid":"hmac","alg":"HS256"}},
                {{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"enc","use":"enc"}},
                {{"kty":"XYZ","kid":"unknown-type"}}]}}"#
        );
        let keys = parse_set(set.as_bytes(), "test").unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, vec![Some("ed".to_owned())]);
        assert!(keys[0].fits(Algorithm::EdDSA));
        assert!(!keys[0].fits(Algorithm::HS256));
        assert!(!keys[0].fits(Algorithm::ES256));
    }

    #[test]
    fn a_set_without_a_usable_key_is_an_error() {
        let only_secret = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        assert!(matches!(
            parse_set(only_secret, "t"),
            Err(JwksError::NoUsableKey(_))
        ));
        assert!(matches!(
            parse_set(b"not json", "t"),
            Err(JwksError::Parse { .. })
        ));
    }

    #[tokio::test]
    async fn a_file_source_is_read_and_reloaded_for_an_unknown_key_once() {
        let path = std::env::temp_dir().join(format!("stdiopool-jwks-{}.json", std::process::id()));
        std::fs::write(&path, format!(r#"{{"keys":[{ED}]}}"#)).unwrap();
        let jwks = Jwks::load(
            JwksSource::File(path.clone()),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
        assert_eq!(jwks.keys_for(Some("ed"), Algorithm::EdDSA).await.len(), 1);
        // The key is renamed at the source: the unknown id reloads once…
        std::fs::write(
            &path,
            format!(r#"{{"keys":[{}]}}"#, ED.replace(r#""ed""#, r#""ed2""#)),
        )
        .unwrap();
        assert_eq!(jwks.keys_for(Some("ed2"), Algorithm::EdDSA).await.len(), 1);
        // …and the next unknown id within the window does not.
        std::fs::write(
            &path,
            format!(r#"{{"keys":[{}]}}"#, ED.replace(r#""ed""#, r#""ed3""#)),
        )
        .unwrap();
        assert!(
            jwks.keys_for(Some("ed3"), Algorithm::EdDSA)
                .await
                .is_empty()
        );
        std::fs::remove_file(&path).unwrap();
    }
}
