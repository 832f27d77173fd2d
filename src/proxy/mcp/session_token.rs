//! Signed pooled-mode session ids (`--session-key-file`): the id carries
//! what a pooled session needs, MACed with the key the instances share, so
//! any instance of the deployment serves any request of the session and no
//! session store is shared.
//!
//! What an id carries (JSON, base64url): the protocol version the client
//! asked for, the client capabilities the proxy relays server requests by
//! (`sampling`, `sampling.tools`, `elicitation`, `roots`: nothing else the
//! proxy reads), 128 random bits (so each `initialize` is its own session),
//! and the issue time (seconds since the epoch; for audit: a
//! pooled session holds nothing, so it has no expiry; rotating the key ends
//! every session, docs/DEPLOY.md "Revocation").
//!
//! Invariants: an id is accepted only if its HMAC-SHA256, over a
//! version-tagged message that covers the minting instance and the payload,
//! verifies under the key (compared in constant time by aws-lc); every
//! failure (shape, MAC, payload) is the same `None`, so forged, tampered and
//! foreign-key ids get the same 404 as unknown ones; the key is never
//! logged or printed (this type's `Debug` shows none of it). An id deleted
//! on this instance is refused here afterwards (the newest
//! [`DELETED_KEPT`] are remembered); other instances cannot know of it.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use rand::TryRng;
use rand::rngs::SysRng;

use super::sessions::Owner;
use crate::proxy::transport::session_id::{SessionId, SessionIdError};
use crate::values::{InstanceId, SessionKey};

/// Domain separation: a MAC made for anything else never verifies here.
const CONTEXT: &[u8] = b"stdiopool session id v1\0";

/// Signed ids this instance answered a DELETE for, remembered (the newest
/// [`DELETED_KEPT`]) so this instance answers 404 for them from then on, as
/// the spec asks of a terminated session. Other instances do not know: the
/// revocation limit docs/DEPLOY.md states.
pub(crate) const DELETED_KEPT: usize = 10_000;

/// Mints and checks signed session ids.
pub(crate) struct SessionSigner {
    key: hmac::Key,
    instance: InstanceId,
    /// The route the ids are for (a listed server's `/servers/<name>`;
    /// empty for the single server): covered by the MAC, so one server's
    /// ids are unknown to another served by the same deployment.
    scope: String,
    deleted: Mutex<Deleted>,
}

#[derive(Default)]
struct Deleted {
    ids: HashSet<SessionId>,
    order: VecDeque<SessionId>,
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSigner")
            .field("instance", &self.instance)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The payload: short names, since it travels in every request's header.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The protocol version the client asked for in `initialize`.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    /// The relayed capabilities (see the module docs).
    #[serde(rename = "c", default)]
    capabilities: Map<String, Value>,
    /// Issue time, seconds since the Unix epoch.
    #[serde(rename = "t")]
    issued_at: u64,
    /// 128 random bits: two clients that initialize alike in the same
    /// second are two sessions (their request ids must not meet).
    #[serde(rename = "n")]
    nonce: String,
    /// The session's owner (OAuth; `sessions::Owner`, base64url).
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

impl SessionSigner {
    pub(crate) fn new(key: &SessionKey, instance: InstanceId) -> SessionSigner {
        SessionSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
            instance,
            scope: String::new(),
            deleted: Mutex::new(Deleted::default()),
        }
    }

    /// The same signer for the ids of one route (see the `scope` field).
    pub(crate) fn scoped(mut self, scope: &str) -> SessionSigner {
        scope.clone_into(&mut self.scope);
        self
    }

    /// A signed id for a client that initialized with `params`.
    #[cfg(test)]
    pub(crate) fn mint(&self, params: Option<&Value>) -> Result<SessionId, SessionIdError> {
        self.mint_for(params, None)
    }

    /// A signed id for a client that initialized with `params`, its session
    /// owned by `owner` (OAuth).
    pub(crate) fn mint_for(
        &self,
        params: Option<&Value>,
        owner: Option<Owner>,
    ) -> Result<SessionId, SessionIdError> {
        let mut nonce = [0u8; 16];
        SysRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| SessionIdError::new(e.to_string()))?;
        let claims = Claims {
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            version: params
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            capabilities: relayed_capabilities(params),
            owner: owner.map(|o| URL_SAFE_NO_PAD.encode(o.as_bytes())),
            issued_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        // Serializing a struct of strings and maps cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = hmac::sign(
            &self.key,
            &message(&self.scope, self.instance.as_str(), &payload),
        );
        Ok(SessionId::signed(
            &self.instance,
            &payload,
            &URL_SAFE_NO_PAD.encode(tag.as_ref()),
        ))
    }

    /// As [`SessionSigner::verify`], and `None` for an id deleted here.
    pub(crate) fn verify_live(&self, id: &SessionId) -> Option<Value> {
        self.verify_live_owned(id).map(|(params, _)| params)
    }

    /// As [`SessionSigner::verify_live`], with the session's owner.
    pub(crate) fn verify_live_owned(&self, id: &SessionId) -> Option<(Value, Option<Owner>)> {
        if self.lock_deleted().ids.contains(id) {
            return None;
        }
        self.verify_owned(id)
    }

    /// A DELETE of `id` reached this instance: whether `id` is a live
    /// signed id (then it is answered 404 here from now on, this DELETE
    /// included if repeated).
    pub(crate) fn delete(&self, id: &SessionId) -> bool {
        if self.verify_live(id).is_none() {
            return false;
        }
        let mut deleted = self.lock_deleted();
        if deleted.ids.insert(id.clone()) {
            deleted.order.push_back(id.clone());
            if deleted.order.len() > DELETED_KEPT
                && let Some(oldest) = deleted.order.pop_front()
            {
                deleted.ids.remove(&oldest);
            }
        }
        true
    }

    fn lock_deleted(&self) -> MutexGuard<'_, Deleted> {
        self.deleted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `initialize` params the session was made with, if `id` is a
    /// signed id that verifies under the key; `None` for anything else.
    #[cfg(test)]
    pub(crate) fn verify(&self, id: &SessionId) -> Option<Value> {
        self.verify_owned(id).map(|(params, _)| params)
    }

    /// As [`SessionSigner::verify`], with the session's owner (an owner
    /// claim that does not decode refuses the id).
    pub(crate) fn verify_owned(&self, id: &SessionId) -> Option<(Value, Option<Owner>)> {
        let (instance, payload, mac) = id.signed_parts()?;
        let tag = URL_SAFE_NO_PAD.decode(mac).ok()?;
        hmac::verify(&self.key, &message(&self.scope, instance, payload), &tag).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let mut params = Map::new();
        if let Some(version) = claims.version {
            params.insert("protocolVersion".into(), Value::String(version));
        }
        params.insert("capabilities".into(), Value::Object(claims.capabilities));
        let owner = match claims.owner {
            None => None,
            Some(text) => Some(Owner::from_bytes(&URL_SAFE_NO_PAD.decode(text).ok()?)?),
        };
        Some((Value::Object(params), owner))
    }
}

fn message(scope: &str, instance: &str, payload: &str) -> Vec<u8> {
    let mut m =
        Vec::with_capacity(CONTEXT.len() + scope.len() + 1 + instance.len() + 1 + payload.len());
    m.extend_from_slice(CONTEXT);
    // A route name holds no NUL (names are URL-safe), so the split is unambiguous.
    m.extend_from_slice(scope.as_bytes());
    m.push(0);
    m.extend_from_slice(instance.as_bytes());
    m.push(b'.');
    m.extend_from_slice(payload.as_bytes());
    m
}

/// The client capabilities `relay.rs` decides by, reduced to what it reads
/// (so the id stays small whatever else the client declares).
fn relayed_capabilities(params: Option<&Value>) -> Map<String, Value> {
    let caps = params.and_then(|p| p.get("capabilities"));
    let mut out = Map::new();
    for name in ["sampling", "elicitation", "roots"] {
        let Some(Value::Object(cap)) = caps.and_then(|c| c.get(name)) else {
            continue;
        };
        let mut kept = Map::new();
        if name == "sampling" && cap.get("tools").is_some() {
            kept.insert("tools".into(), Value::Object(Map::new()));
        }
        out.insert(name.into(), Value::Object(kept));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn key(fill: &str) -> SessionKey {
        SessionKey::from_file_contents(&fill.repeat(40)).unwrap()
    }

    fn signer(fill: &str, instance: &str) -> SessionSigner {
        SessionSigner::new(&key(fill), InstanceId::parse(instance).unwrap())
    }

    fn params() -> Value {
        json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {
                "sampling": {"tools": {}, "context": {}},
                "elicitation": {"form": {}},
                "experimental": {"big": "x".repeat(4000)}
            },
            "clientInfo": {"name": "c", "version": "1"}
        })
    }

    #[test]
    fn any_instance_with_the_key_accepts_and_restores_what_the_session_needs() {
        let id = signer("k", "web-1").mint(Some(&params())).unwrap();
        assert!(id.is_signed() && id.owner() == "web-1");
        assert!(
            id.as_str().len() < 200,
            "small whatever the client declares: {id}"
        );
        let parsed = SessionId::parse(id.as_str()).unwrap();
        let restored = signer("k", "web-2").verify(&parsed).unwrap();
        assert_eq!(
            restored,
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {"sampling": {"tools": {}}, "elicitation": {}}
            })
        );
    }

    /// Regression: ids once carried only the version, capabilities and the
    /// second of issue, so clients that initialized alike in the same second
    /// shared one session, and their request ids collided ("already in use"
    /// in the scale-out test's concurrent load).
    #[test]
    fn clients_that_initialize_alike_at_once_get_distinct_sessions() {
        let s = signer("k", "web-1");
        let ids: std::collections::HashSet<SessionId> =
            (0..100).map(|_| s.mint(Some(&params())).unwrap()).collect();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn tampered_forged_and_foreign_key_ids_are_refused() {
        let mine = signer("k", "web-1");
        let id = mine.mint(Some(&params())).unwrap();
        let (instance, payload, mac) = id.signed_parts().unwrap();
        // Another deployment's key.
        assert!(signer("q", "web-1").verify(&id).is_none());
        // A payload granting more, with the old MAC.
        let richer = URL_SAFE_NO_PAD.encode(br#"{"c":{"roots":{}},"t":0,"n":"x"}"#);
        let forged = SessionId::parse(&format!("{instance}.{richer}.{mac}")).unwrap();
        assert!(mine.verify(&forged).is_none());
        // The MAC covers the owner too.
        let moved = SessionId::parse(&format!("web-9.{payload}.{mac}")).unwrap();
        assert!(mine.verify(&moved).is_none());
        // One character of the MAC changed, or cut short.
        let mut bytes = mac.as_bytes().to_vec();
        bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        for bad_mac in [flipped.as_str(), &mac[..mac.len() - 2], "AAAA"] {
            let bad = SessionId::parse(&format!("{instance}.{payload}.{bad_mac}")).unwrap();
            assert!(mine.verify(&bad).is_none(), "{bad_mac}");
        }
        // A local id is never a signed one.
        let local = SessionId::generate().unwrap();
        assert!(mine.verify(&local).is_none());
        assert!(mine.verify(&id).is_some());
    }

    #[test]
    fn the_owner_travels_in_the_id_under_the_mac() {
        let owner = Owner::of(Some(&crate::proxy::transport::oauth::Subject(
            "alice".into(),
        )));
        let s = signer("k", "web-1");
        let id = s.mint_for(Some(&params()), owner).unwrap();
        let (_, restored) = signer("k", "web-2").verify_owned(&id).unwrap();
        assert_eq!(restored, owner);
        assert!(!id.as_str().contains("alice"), "a digest, not the subject");
        let (_, none) = s.verify_owned(&s.mint(None).unwrap()).unwrap();
        assert_eq!(none, None);
        // Claims naming another owner, with the old MAC: refused.
        let (instance, _, mac) = id.signed_parts().unwrap();
        let other =
            URL_SAFE_NO_PAD.encode(br#"{"c":{},"t":0,"n":"x","u":"AAAAAAAAAAAAAAAAAAAAAA"}"#);
        let forged = SessionId::parse(&format!("{instance}.{other}.{mac}")).unwrap();
        assert!(s.verify_owned(&forged).is_none());
    }

    /// One deployment serving several routes: a server's signed ids must not
    /// open a session at another (its handshake and capabilities differ).
    #[test]
    fn an_id_minted_for_one_route_is_refused_at_another() {
        let a = signer("k", "web-1").scoped("/servers/a");
        let id = a.mint(Some(&params())).unwrap();
        assert!(a.verify(&id).is_some());
        assert!(
            signer("k", "web-2")
                .scoped("/servers/a")
                .verify(&id)
                .is_some()
        );
        assert!(
            signer("k", "web-1")
                .scoped("/servers/b")
                .verify(&id)
                .is_none()
        );
        assert!(
            signer("k", "web-1").verify(&id).is_none(),
            "the single route"
        );
    }

    #[test]
    fn a_deleted_id_is_refused_here_and_only_the_newest_deletions_are_kept() {
        let s = signer("k", "web-1");
        let first = s.mint(None).unwrap();
        assert!(s.delete(&first));
        assert!(s.verify_live(&first).is_none());
        assert!(!s.delete(&first), "a second DELETE finds it gone");
        assert!(s.verify(&first).is_some(), "still a valid signature");
        assert!(
            !s.delete(&SessionId::generate().unwrap()),
            "not a signed id"
        );
        for _ in 0..DELETED_KEPT {
            assert!(s.delete(&s.mint(None).unwrap()));
        }
        assert!(s.verify_live(&first).is_some(), "forgotten: bounded memory");
    }

    #[test]
    fn the_key_is_in_no_debug_output() {
        let secret = "Sup3rS3cretKeyMaterial-";
        let key = SessionKey::from_file_contents(&secret.repeat(3)).unwrap();
        let signer = SessionSigner::new(&key, InstanceId::parse("web-1").unwrap());
        let shown = format!("{signer:?} {signer:#?} {key:?}");
        assert!(!shown.contains("Sup3r"), "{shown}");
    }
}
