//! Access-token validation: the `Authorization: Bearer` JWT checked against
//! the issuer's keys, the trusted issuers, the audience, the validity window
//! and the required scopes.
//!
//! Invariant: a token is accepted only if its signature verifies with an
//! asymmetric key of the configured set under the algorithm its header
//! names, that algorithm is one of [`ACCEPTED_ALGORITHMS`] (so never `none`
//! and never HMAC), `iss` is a trusted issuer, `aud` holds the configured
//! audience, `exp` is in the future and `nbf` (when present) in the past,
//! both within the leeway. The token itself is never logged; only why it was
//! refused and, once accepted, its subject.

use std::collections::HashSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::jwks::{Jwks, JwksError};
use crate::values::OAuthSettings;

/// The signature algorithms accepted: RSA (PKCS#1 v1.5 and PSS), ECDSA on
/// P-256/P-384, and Ed25519.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token (401 without an error code, RFC 6750 §3.1).
    Missing,
    /// A token that is not acceptable (401 `invalid_token`); the reason is
    /// for the log only.
    Invalid(InvalidReason),
    /// A valid token without every required scope (403 `insufficient_scope`).
    InsufficientScope,
}

/// Why a token was not acceptable (logged at debug; never sent in detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// Not `Bearer <token>`, or not a JWS in compact form.
    Malformed,
    /// An algorithm outside [`ACCEPTED_ALGORITHMS`] (`none`, HMAC, …).
    Algorithm,
    /// No key of the set has that key id (after one reload).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is still to come.
    NotYetValid,
    /// `iss` is not a trusted issuer.
    Issuer,
    /// `aud` does not hold the audience.
    Audience,
    /// A required claim is missing or has the wrong type.
    Claims,
}

/// What an accepted token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The `sub` claim, when present.
    pub subject: Option<String>,
    /// The scopes granted (`scope`, or `scp` as some providers name it).
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<ScopeClaim>,
}

/// `scp` is a list at Okta and Entra ID, a string at some others.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    List(Vec<String>),
    Text(String),
}

/// Validates access tokens for one resource.
#[derive(Debug)]
pub struct TokenVerifier {
    settings: OAuthSettings,
    jwks: Jwks,
}

impl TokenVerifier {
    /// Loads the issuer's keys (start-up fails if they cannot be loaded).
    pub async fn start(settings: OAuthSettings) -> Result<TokenVerifier, JwksError> {
        let jwks = Jwks::load(
            settings.jwks.clone(),
            settings.min_refresh,
            settings.max_age,
        )
        .await?;
        Ok(TokenVerifier { settings, jwks })
    }

    /// The settings it checks against.
    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// Checks the value of an `Authorization` header (`None`: absent).
    pub async fn verify(&self, authorization: Option<&[u8]>) -> Result<Grant, Refusal> {
        let Some(raw) = authorization else {
            return Err(Refusal::Missing);
        };
        let token = bearer_token(raw).ok_or(Refusal::Invalid(InvalidReason::Malformed))?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // An `alg` the crate does not know (`none` among them) fails here.
            ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => {
                Refusal::Invalid(InvalidReason::Algorithm)
            }
            _ => Refusal::Invalid(InvalidReason::Malformed),
        })?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(Refusal::Invalid(InvalidReason::Algorithm));
        }
        let keys = self.jwks.keys_for(header.kid.as_deref(), header.alg).await;
        if keys.is_empty() {
            return Err(Refusal::Invalid(InvalidReason::UnknownKey));
        }
        let validation = self.validation(header.alg);
        let mut last = InvalidReason::Signature;
        for key in &keys {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return self.grant(data.claims),
                Err(e) => {
                    last = reason(e.kind());
                    if last != InvalidReason::Signature {
                        // The signature verified: the claims decide.
                        break;
                    }
                }
            }
        }
        Err(Refusal::Invalid(last))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.settings.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_audience(&[self.settings.audience.as_str()]);
        v.set_issuer(&self.settings.issuers);
        v.required_spec_claims = ["exp", "iss", "aud"]
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        v
    }

    fn grant(&self, claims: Claims) -> Result<Grant, Refusal> {
        let mut scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect();
        match claims.scp {
            Some(ScopeClaim::List(list)) => scopes.extend(list),
            Some(ScopeClaim::Text(text)) => {
                scopes.extend(text.split_ascii_whitespace().map(str::to_owned));
            }
            None => {}
        }
        let grant = Grant {
            subject: claims.sub,
            scopes,
        };
        let missing = self
            .settings
            .required_scopes
            .iter()
            .any(|needed| !grant.scopes.contains(needed));
        if missing {
            return Err(Refusal::InsufficientScope);
        }
        Ok(grant)
    }
}

fn reason(kind: &ErrorKind) -> InvalidReason {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => InvalidReason::Signature,
        ErrorKind::ExpiredSignature => InvalidReason::Expired,
        ErrorKind::ImmatureSignature => InvalidReason::NotYetValid,
        ErrorKind::InvalidIssuer => InvalidReason::Issuer,
        ErrorKind::InvalidAudience => InvalidReason::Audience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => InvalidReason::Algorithm,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            InvalidReason::Claims
        }
        _ => InvalidReason::Malformed,
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1).
fn bearer_token(raw: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(raw).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token(b"Bearer a.b.c"), Some("a.b.c"));
        assert_eq!(bearer_token(b"bearer  a.b.c "), Some("a.b.c"));
        for bad in [
            &b"Basic a.b.c"[..],
            b"Bearer",
            b"Bearer ",
            b"a.b.c",
            b"\xff\xfe",
        ] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }
}
