//! The invariant checker fires on each kind of broken accounting.
use super::*;

#[derive(Debug, Clone, thiserror::Error)]
#[error("never")]
struct Never;

#[derive(Debug)]
struct Unit;

impl Manager for Unit {
    type Object = ();
    type Error = Never;

    async fn create(&self) -> Result<(), Never> {
        Ok(())
    }

    async fn recycle(&self, _obj: &mut (), _meta: &ObjectMeta) -> Result<(), Never> {
        Ok(())
    }

    fn is_broken(&self, _obj: &()) -> bool {
        false
    }
}

fn shared() -> Shared<Unit> {
    Shared::new(Unit, PoolConfig::new(2))
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "the checker is off in release")]
#[should_panic(expected = "pool accounting: size 1 != idle 0")]
fn the_checker_fires_on_a_slot_taken_without_a_place() {
    let shared = shared();
    let mut st = shared.lock();
    st.size += 1; // a slot counted in no place: a lost slot
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "the checker is off in release")]
#[should_panic(expected = "pool accounting: 1 queued while")]
fn the_checker_fires_on_a_waiter_queued_beside_a_free_slot() {
    let shared = shared();
    let mut st = shared.lock();
    st.queue.insert(0);
    st.waiters.insert(
        0,
        Waiter {
            waker: None,
            grant: None,
        },
    );
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "the checker is off in release")]
#[should_panic(expected = "pool accounting: closed with 1 idle")]
fn the_checker_fires_on_an_idle_object_in_a_closed_pool() {
    let shared = shared();
    let mut st = shared.lock();
    st.closed = true;
    st.size += 1;
    st.idle.push_back(Entry {
        obj: (),
        meta: ObjectMeta::new(Instant::now()),
    });
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "the checker is off in release")]
#[should_panic(expected = "pool accounting: the queue names a waiter")]
fn the_checker_fires_on_a_queued_waiter_that_is_gone() {
    let shared = shared();
    let mut st = shared.lock();
    st.size = 2;
    st.lent = 2;
    st.queue.insert(7);
}

#[test]
fn the_checker_counts_every_place_a_slot_can_be() {
    let shared = Shared::new(Unit, PoolConfig::new(5));
    let mut st = shared.lock();
    st.lent = 1;
    st.creating = 1;
    st.warming = 1;
    st.granted = 1;
    st.size = 4; // one in each place: whole, so no panic
}

/// A panic inside a locked section is not turned into an abort by a
/// second panic from the checker while unwinding.
#[test]
#[should_panic(expected = "the first panic")]
fn the_checker_stays_quiet_while_unwinding() {
    let shared = shared();
    let mut st = shared.lock();
    st.size += 1;
    panic!("the first panic");
}

#[test]
fn the_checker_passes_a_whole_pool_through_get_and_return() {
    let shared = shared();
    let Ok(Reserve::Slot) = shared.reserve(true) else {
        panic!("a free slot");
    };
    let entry = shared.created((), Hold::Creating);
    let Ok(entry) = entry else {
        panic!("created");
    };
    shared.return_object(entry);
    let status = shared.status();
    assert_eq!((status.size, status.idle), (1, 1));
}
