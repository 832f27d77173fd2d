//! Unit tests of the session store: eviction order, end reasons, races with
//! requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

/// A session past its handshake (its client has spoken in it).
fn session() -> Arc<Session> {
    let s = Session::new(SessionId::generate().unwrap(), None);
    s.touch();
    s
}

fn store(sessions: &[&Arc<Session>]) -> Sessions {
    let store = Sessions::default();
    for s in sessions {
        store.insert(Arc::clone(s));
    }
    store
}

fn ended(store: &Sessions, reason: EndReason) -> u64 {
    store
        .ended_counts()
        .into_iter()
        .find(|(r, _)| *r == reason)
        .map(|(_, n)| n)
        .unwrap()
}

#[test]
fn eviction_ends_the_session_quiet_longest_and_counts_it() {
    let (old, new) = (session(), session());
    *lock(&old.last_active) = Instant::now() - Duration::from_secs(60);
    let store = store(&[&old, &new]);
    assert!(store.evict_idlest(Duration::ZERO));
    assert!(store.get(&old.id).is_none(), "the oldest is gone");
    assert!(store.get(&new.id).is_some(), "the newer one stays");
    assert!(old.ended.is_cancelled());
    assert_eq!(ended(&store, EndReason::Pressure), 1);
}

/// Regression: a burst of `initialize`s on a full pool ended sessions
/// before their clients' `notifications/initialized` (404).
#[test]
fn a_session_is_not_evicted_before_its_client_speaks_in_it_within_the_grace() {
    let fresh = Session::new(SessionId::generate().unwrap(), None);
    let store = store(&[&fresh]);
    assert!(!store.evict_idlest(Duration::ZERO), "mid-handshake");
    assert!(store.get(&fresh.id).is_some());
    // Once its client has spoken (and gone quiet) it is evictable.
    fresh.touch();
    assert!(store.evict_idlest(Duration::ZERO));
    assert!(store.get(&fresh.id).is_none());

    // A client that never speaks is protected for the grace only.
    let silent = Session::new(SessionId::generate().unwrap(), None);
    *lock(&silent.last_active) = Instant::now() - HANDSHAKE_GRACE;
    let store = super::Sessions::default();
    store.insert(Arc::clone(&silent));
    assert!(store.evict_idlest(Duration::ZERO));
}

#[test]
fn a_spare_is_made_only_from_a_session_quiet_long_enough() {
    let (quiet, recent) = (session(), session());
    *lock(&quiet.last_active) = Instant::now() - Duration::from_secs(60);
    let store = store(&[&quiet, &recent]);
    assert!(store.evict_idlest(Duration::from_secs(30)));
    assert!(store.get(&quiet.id).is_none());
    assert!(
        !store.evict_idlest(Duration::from_secs(30)),
        "a session active a moment ago is kept"
    );
    assert!(store.get(&recent.id).is_some());
}

#[test]
fn a_session_with_a_request_in_flight_is_never_evicted() {
    let (busy, quiet) = (session(), session());
    *lock(&busy.last_active) = Instant::now() - Duration::from_secs(60);
    let store = store(&[&busy, &quiet]);
    let guard = busy.begin(&Id::from(1_u64)).unwrap();
    assert!(
        store.evict_idlest(Duration::ZERO),
        "the quiet one makes room"
    );
    assert!(store.get(&quiet.id).is_none());
    assert!(
        !store.evict_idlest(Duration::ZERO),
        "nothing left that may be ended"
    );
    assert!(store.get(&busy.id).is_some());
    assert!(!guard.cancel_token().is_cancelled());
    drop(guard);
    assert!(
        store.evict_idlest(Duration::ZERO),
        "once its request is over, it may go"
    );
    assert_eq!(store.len(), 0);
}

#[test]
fn an_open_get_stream_does_not_protect_a_session_from_eviction() {
    let listening = session();
    let rx = listening.open_stream().unwrap();
    let store = store(&[&listening]);
    assert!(store.evict_idlest(Duration::ZERO));
    assert!(rx.is_closed() || lock(&listening.get_stream).is_none());
    assert!(
        lock(&listening.get_stream).is_none(),
        "its stream is closed"
    );
}

#[test]
fn a_request_arriving_after_eviction_finds_the_session_gone() {
    let s = session();
    let store = store(&[&s]);
    assert!(store.evict_idlest(Duration::ZERO));
    assert!(matches!(
        s.begin(&Id::from(1_u64)),
        Err(ProxyError::SessionNotFound)
    ));
    assert!(matches!(s.open_stream(), Err(ProxyError::SessionNotFound)));
}

#[test]
fn end_reasons_are_counted_apart() {
    let (a, b) = (session(), session());
    let store = store(&[&a, &b]);
    store.remove(&a.id, EndReason::Delete);
    assert!(store.remove(&a.id, EndReason::Delete).is_none());
    *lock(&b.last_active) = Instant::now() - Duration::from_secs(10);
    assert_eq!(store.reap_idle(Duration::from_secs(5)), 1);
    assert_eq!(ended(&store, EndReason::Delete), 1);
    assert_eq!(ended(&store, EndReason::IdleTimeout), 1);
    assert_eq!(ended(&store, EndReason::Pressure), 0);
    assert_eq!(ended(&store, EndReason::ProcessExit), 0);
}

#[test]
fn a_session_with_an_owner_is_found_and_ended_only_for_that_owner() {
    let subject = |s: &str| Owner::of(Some(&Subject(s.to_owned())));
    let (alice, bob) = (subject("alice"), subject("bob"));
    assert!(alice.is_some() && alice != bob);
    assert_eq!(Owner::of(None), None);
    let owned = session().bind(alice);
    let open = session().bind(None);
    let store = store(&[&owned, &open]);
    assert!(store.get_for(&owned.id, alice).is_some());
    assert!(store.get_for(&owned.id, bob).is_none());
    assert!(
        store.get_for(&owned.id, None).is_none(),
        "no token, no session"
    );
    assert!(
        store.get_for(&open.id, bob).is_some(),
        "no owner: anyone (no OAuth)"
    );
    assert!(
        store
            .remove_for(&owned.id, bob, EndReason::Delete)
            .is_none()
    );
    assert!(!owned.ended.is_cancelled());
    assert!(
        store
            .remove_for(&owned.id, alice, EndReason::Delete)
            .is_some()
    );
    assert!(owned.ended.is_cancelled());
}
