//! The calls parked for their client's retry (MRTR), by `requestState`, and
//! what a retry must match to continue one.
//!
//! Invariants: a state is 128 bits from the OS random source, used once, and
//! only by a retry of the same method on the same name or URI (a foreign
//! retry leaves the call parked); when a request finds no free process, the
//! call parked longest gives way first ([`make_room`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rand::TryRng;
use rand::rngs::SysRng;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::mrtr::Round;

/// What a parked call is bound to: a retry must be the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) method: String,
    /// `params.name` (tools/call, prompts/get) or `params.uri` (resources/read).
    pub(crate) target: Option<String>,
}

impl Binding {
    pub(crate) fn of(method: &str, params: Option<&Value>) -> Binding {
        let target = params
            .and_then(|p| p.get("name").or_else(|| p.get("uri")))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Binding {
            method: method.to_owned(),
            target,
        }
    }
}

/// Why a retry names no call the proxy can continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RetryError {
    #[error(
        "requestState names no parked call (unknown, used, or its call ended: --input-wait elapsed, or it gave way to another request)"
    )]
    Unknown,
    #[error(
        "requestState belongs to another request (method and name or uri must be the original's)"
    )]
    Mismatch,
}

struct Entry {
    binding: Binding,
    retry: oneshot::Sender<Round>,
    give_way: CancellationToken,
    since: Instant,
}

/// The calls parked for a client's retry, by `requestState`.
#[derive(Default)]
pub(crate) struct ParkedCalls {
    calls: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for ParkedCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParkedCalls")
            .field("parked", &self.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// 128 bits from the OS random source, as 32 hex digits.
pub(super) fn new_state() -> Result<String, rand::rngs::SysError> {
    let mut bytes = [0u8; 16];
    SysRng.try_fill_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl ParkedCalls {
    /// Calls parked now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.calls).len()
    }

    pub(super) fn park(
        &self,
        state: String,
        binding: Binding,
        retry: oneshot::Sender<Round>,
    ) -> CancellationToken {
        let give_way = CancellationToken::new();
        lock(&self.calls).insert(
            state,
            Entry {
                binding,
                retry,
                give_way: give_way.clone(),
                since: Instant::now(),
            },
        );
        give_way
    }

    pub(super) fn forget(&self, state: &str) {
        lock(&self.calls).remove(state);
    }

    /// Continues the call `state` names with `round`. The state is used up
    /// only by a retry of the same request; another request's leaves it.
    pub(crate) fn resume(
        &self,
        state: &str,
        binding: &Binding,
        round: Round,
    ) -> Result<(), (RetryError, Round)> {
        let mut calls = lock(&self.calls);
        match calls.get(state) {
            None => return Err((RetryError::Unknown, round)),
            Some(entry) if &entry.binding != binding => return Err((RetryError::Mismatch, round)),
            Some(_) => {}
        }
        let Some(entry) = calls.remove(state) else {
            return Err((RetryError::Unknown, round));
        };
        drop(calls);
        // The call's task may have ended between our lookup and now.
        entry
            .retry
            .send(round)
            .map_err(|round| (RetryError::Unknown, round))
    }

    /// A request found no free process: the call parked longest ends and
    /// gives its process back. Returns whether one did.
    pub(crate) fn give_way(&self) -> bool {
        let calls = lock(&self.calls);
        let oldest = calls
            .values()
            .filter(|e| !e.give_way.is_cancelled())
            .min_by_key(|e| e.since);
        match oldest {
            Some(entry) => {
                entry.give_way.cancel();
                true
            }
            None => false,
        }
    }
}

/// Called before a request checks out a process: if none is free and a call
/// is parked, the one parked longest gives its process back (the request
/// then waits for it as for any other). A parked call serves nobody until
/// its client returns, so it yields before anyone waits on it; the check is
/// a snapshot, so at worst one call gives way a moment early.
pub(crate) fn make_room(st: &crate::proxy::mcp::McpState) {
    let status = st.pool.status();
    if status.idle == 0 && status.size >= status.max && st.parked.give_way() {
        tracing::debug!("no free process: a parked MRTR call gives way");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use serde_json::{Map, json};

    use super::*;
    use crate::jsonrpc::Id;
    use crate::proxy::mcp::calls::Ending;

    fn round(id: i64) -> (Round, oneshot::Receiver<(Value, Ending)>) {
        let (tx, rx) = oneshot::channel();
        let round = Round {
            id: Id::from_value(json!(id)).unwrap(),
            responses: Map::new(),
            stream: None,
            reply: tx,
        };
        (round, rx)
    }

    fn binding(name: &str) -> Binding {
        Binding::of("tools/call", Some(&json!({"name": name})))
    }

    #[test]
    fn states_are_random_and_hex() {
        let a = new_state().unwrap();
        let b = new_state().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_state_is_used_once_and_only_by_the_same_request() {
        let parked = ParkedCalls::default();
        let (tx, mut rx) = oneshot::channel();
        parked.park("s".into(), binding("a"), tx);
        let (r, _) = round(2);
        let (e, r) = parked.resume("s", &binding("b"), r).unwrap_err();
        assert_eq!(e, RetryError::Mismatch);
        assert_eq!(parked.len(), 1, "a mismatched retry leaves the call parked");
        let (e, r) = parked.resume("t", &binding("a"), r).unwrap_err();
        assert_eq!(e, RetryError::Unknown);
        assert!(parked.resume("s", &binding("a"), r).is_ok());
        assert_eq!(rx.try_recv().unwrap().id, Id::from_value(json!(2)).unwrap());
        let (r, _) = round(3);
        let (e, _) = parked.resume("s", &binding("a"), r).unwrap_err();
        assert_eq!(e, RetryError::Unknown, "used up");
    }

    #[test]
    fn the_call_parked_longest_gives_way_first() {
        let parked = ParkedCalls::default();
        assert!(!parked.give_way());
        let (tx, _rx1) = oneshot::channel();
        let first = parked.park("old".into(), binding("a"), tx);
        std::thread::sleep(Duration::from_millis(2));
        let (tx, _rx2) = oneshot::channel();
        let second = parked.park("new".into(), binding("a"), tx);
        assert!(parked.give_way());
        assert!(first.is_cancelled());
        assert!(!second.is_cancelled());
    }
}
