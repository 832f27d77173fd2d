//! A proptest state machine for the pool: random sequences of get / return /
//! return-broken / discard / poll or cancel a waiting get / clone and drop
//! handles / close / maintenance / a maintenance pass cut mid-create /
//! breaking idle objects / failing creates,
//! run against a reference model that predicts every outcome.
//!
//! Checked after every step: live ≤ max; created − destroyed = live; no
//! object destroyed twice; the pool's status equals the model's. At the end:
//! the pool still serves (no slot lost), and once the last handle and guard
//! are gone every object was destroyed exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use stdiopool::pool::{Backoff, Manager, ObjectMeta, Pool, PoolConfig, PoolError, Pooled};

// ---- the system under test's manager ----------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("create failed")]
struct Fail;

#[derive(Debug, Default)]
struct Tally {
    next_id: u64,
    live: BTreeSet<u64>,
    destroyed: BTreeSet<u64>,
    broken: BTreeSet<u64>,
    create_fails: bool,
    /// `create` never finishes (set only while a maintenance pass is cut).
    creates_hang: bool,
}

#[derive(Debug)]
struct Obj {
    id: u64,
    tally: Arc<Mutex<Tally>>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        let mut t = self.tally.lock().unwrap();
        assert!(
            t.live.remove(&self.id),
            "object {} destroyed but not live",
            self.id
        );
        assert!(
            t.destroyed.insert(self.id),
            "object {} destroyed twice",
            self.id
        );
    }
}

#[derive(Debug, Clone)]
struct Mgr(Arc<Mutex<Tally>>);

impl Manager for Mgr {
    type Object = Obj;
    type Error = Fail;

    async fn create(&self) -> Result<Obj, Fail> {
        let hang = self.0.lock().unwrap().creates_hang;
        if hang {
            std::future::pending::<()>().await;
        }
        let mut t = self.0.lock().unwrap();
        if t.create_fails {
            return Err(Fail);
        }
        let id = t.next_id;
        t.next_id += 1;
        t.live.insert(id);
        Ok(Obj {
            id,
            tally: self.0.clone(),
        })
    }

    async fn recycle(&self, obj: &mut Obj, _meta: &ObjectMeta) -> Result<(), Fail> {
        if self.0.lock().unwrap().broken.contains(&obj.id) {
            Err(Fail)
        } else {
            Ok(())
        }
    }

    fn is_broken(&self, obj: &Obj) -> bool {
        self.0.lock().unwrap().broken.contains(&obj.id)
    }
}

// ---- the reference model ----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Got(u64),
    Pending,
    Closed,
    CreateFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum W {
    Queued,
    Object(u64),
    Slot,
    Closed,
}

#[derive(Debug, Clone)]
struct Model {
    max: usize,
    min_idle: usize,
    handles: usize,
    closed: bool,
    size: usize,
    idle: Vec<u64>,
    held: Vec<u64>,
    waiters: Vec<(u64, W)>,
    queue: VecDeque<u64>,
    next_wid: u64,
    next_id: u64,
    create_fails: bool,
    broken: BTreeSet<u64>,
    live: BTreeSet<u64>,
    destroyed: BTreeSet<u64>,
    last: Option<Outcome>,
}

#[derive(Debug, Clone)]
enum T {
    Get,
    Return(usize),
    ReturnBroken(usize),
    Discard(usize),
    PollWaiter(usize),
    CancelWaiter(usize),
    BreakIdle(usize),
    CloneHandle,
    DropHandle,
    Close,
    Maintain,
    /// A maintenance pass polled once (its `create`s hang) and dropped.
    CancelMaintain,
    SetCreateFails(bool),
}

impl Model {
    fn init_state_for(max: usize, min_idle: usize) -> Model {
        Model {
            max,
            min_idle: min_idle.min(max),
            handles: 1,
            closed: false,
            size: 0,
            idle: vec![],
            held: vec![],
            waiters: vec![],
            queue: VecDeque::new(),
            next_wid: 0,
            next_id: 0,
            create_fails: false,
            broken: BTreeSet::new(),
            live: BTreeSet::new(),
            destroyed: BTreeSet::new(),
            last: None,
        }
    }

    fn destroy(&mut self, id: u64) {
        assert!(self.live.remove(&id));
        assert!(self.destroyed.insert(id));
    }

    fn waiter(&mut self, wid: u64) -> &mut W {
        &mut self.waiters.iter_mut().find(|(w, _)| *w == wid).unwrap().1
    }

    fn release_slot(&mut self) {
        match self.queue.pop_front() {
            Some(wid) => *self.waiter(wid) = W::Slot,
            None => self.size -= 1,
        }
    }

    fn return_obj(&mut self, id: u64) {
        if self.closed {
            self.size -= 1;
            self.destroy(id);
        } else if let Some(wid) = self.queue.pop_front() {
            *self.waiter(wid) = W::Object(id);
        } else {
            self.idle.push(id);
        }
    }

    fn create(&mut self) -> Option<u64> {
        if self.create_fails {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.live.insert(id);
        Some(id)
    }

    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for id in std::mem::take(&mut self.idle) {
            self.size -= 1;
            self.destroy(id);
        }
        self.queue.clear();
        let waiters = std::mem::take(&mut self.waiters);
        for (wid, w) in &waiters {
            match *w {
                W::Object(id) => {
                    self.size -= 1;
                    self.destroy(id);
                }
                W::Slot => self.size -= 1,
                W::Queued | W::Closed => {}
            }
            self.waiters.push((*wid, W::Closed));
        }
    }

    /// The get loop from a fresh reserve; `wid` is the waiter to (re)queue as.
    fn get_loop(&mut self, wid: u64) -> Outcome {
        loop {
            if self.closed {
                return Outcome::Closed;
            }
            if let Some(id) = self.idle.pop() {
                if self.broken.contains(&id) {
                    self.destroy(id); // recycle failed
                    self.release_slot();
                    continue;
                }
                self.held.push(id);
                return Outcome::Got(id);
            }
            if self.size < self.max {
                self.size += 1;
                return self.finish_create();
            }
            self.queue.push_back(wid);
            self.waiters.push((wid, W::Queued));
            return Outcome::Pending;
        }
    }

    fn finish_create(&mut self) -> Outcome {
        match self.create() {
            Some(id) => {
                self.held.push(id);
                Outcome::Got(id)
            }
            None => {
                self.release_slot();
                Outcome::CreateFailed
            }
        }
    }

    fn remove_waiter(&mut self, i: usize) -> (u64, W) {
        let entry = self.waiters.remove(i);
        self.queue.retain(|&w| w != entry.0);
        entry
    }

    /// A waiter future (which holds a pool handle) went away.
    fn waiter_gone(&mut self) {
        if self.handles == 0 && self.waiters.is_empty() {
            self.close();
        }
    }

    /// Maintenance's first phase: broken idle objects are destroyed.
    fn reap(&mut self) {
        let idle = std::mem::take(&mut self.idle);
        let (doomed, kept): (Vec<u64>, Vec<u64>) =
            idle.into_iter().partition(|id| self.broken.contains(id));
        self.idle = kept;
        for id in doomed {
            self.destroy(id);
            self.release_slot();
        }
    }

    fn return_guard(&mut self, id: u64, discard: bool) {
        if self.closed {
            self.size = self.size.saturating_sub(1);
            self.destroy(id);
        } else if discard || self.broken.contains(&id) {
            self.destroy(id);
            self.release_slot();
        } else {
            self.return_obj(id);
        }
    }
}

impl ReferenceStateMachine for Model {
    type State = Model;
    type Transition = T;

    fn init_state() -> BoxedStrategy<Model> {
        (1usize..=3, 0usize..=2)
            .prop_map(|(max, min_idle)| Model::init_state_for(max, min_idle))
            .boxed()
    }

    fn transitions(s: &Model) -> BoxedStrategy<T> {
        // Only transitions that apply to this state, so nothing is rejected.
        let mut options: Vec<(u32, BoxedStrategy<T>)> =
            vec![(1, any::<bool>().prop_map(T::SetCreateFails).boxed())];
        if s.handles > 0 {
            options.extend([
                (6, Just(T::Get).boxed()),
                (1, Just(T::CloneHandle).boxed()),
                (1, Just(T::DropHandle).boxed()),
                (1, Just(T::Close).boxed()),
                (2, Just(T::Maintain).boxed()),
                (2, Just(T::CancelMaintain).boxed()),
            ]);
        }
        let held = s.held.len();
        if held > 0 {
            options.extend([
                (4, (0..held).prop_map(T::Return).boxed()),
                (1, (0..held).prop_map(T::ReturnBroken).boxed()),
                (1, (0..held).prop_map(T::Discard).boxed()),
            ]);
        }
        let waiting = s.waiters.len();
        if waiting > 0 {
            options.extend([
                (3, (0..waiting).prop_map(T::PollWaiter).boxed()),
                (2, (0..waiting).prop_map(T::CancelWaiter).boxed()),
            ]);
        }
        if !s.idle.is_empty() {
            options.push((1, (0..s.idle.len()).prop_map(T::BreakIdle).boxed()));
        }
        proptest::strategy::Union::new_weighted(options).boxed()
    }

    fn preconditions(s: &Model, t: &T) -> bool {
        match t {
            T::Get
            | T::CloneHandle
            | T::DropHandle
            | T::Close
            | T::Maintain
            | T::CancelMaintain => s.handles > 0,
            T::Return(i) | T::ReturnBroken(i) | T::Discard(i) => *i < s.held.len(),
            T::PollWaiter(i) | T::CancelWaiter(i) => *i < s.waiters.len(),
            T::BreakIdle(i) => *i < s.idle.len(),
            T::SetCreateFails(_) => true,
        }
    }

    fn apply(mut s: Model, t: &T) -> Model {
        s.last = None;
        match *t {
            T::Get => {
                let wid = s.next_wid;
                s.next_wid += 1;
                s.last = Some(s.get_loop(wid));
            }
            T::Return(i) => {
                let id = s.held.remove(i);
                s.return_guard(id, false);
            }
            T::ReturnBroken(i) => {
                let id = s.held.remove(i);
                s.broken.insert(id);
                s.return_guard(id, false);
            }
            T::Discard(i) => {
                let id = s.held.remove(i);
                s.return_guard(id, true);
            }
            T::PollWaiter(i) => {
                let (wid, w) = s.waiters[i];
                let outcome = match w {
                    W::Queued => Outcome::Pending,
                    W::Closed => {
                        s.remove_waiter(i);
                        Outcome::Closed
                    }
                    W::Slot => {
                        s.remove_waiter(i);
                        s.finish_create()
                    }
                    W::Object(id) => {
                        s.remove_waiter(i);
                        if s.broken.contains(&id) {
                            s.destroy(id);
                            s.release_slot();
                            s.get_loop(wid)
                        } else {
                            s.held.push(id);
                            Outcome::Got(id)
                        }
                    }
                };
                if outcome != Outcome::Pending {
                    s.waiter_gone();
                }
                s.last = Some(outcome);
            }
            T::CancelWaiter(i) => {
                let (_, w) = s.remove_waiter(i);
                match w {
                    W::Object(id) => s.return_obj(id),
                    W::Slot => s.release_slot(),
                    W::Queued | W::Closed => {}
                }
                s.waiter_gone();
            }
            T::BreakIdle(i) => {
                let id = s.idle[i];
                s.broken.insert(id);
            }
            T::CloneHandle => s.handles += 1,
            T::DropHandle => {
                s.handles -= 1;
                s.waiter_gone();
            }
            T::Close => s.close(),
            // Cut mid-create, a pass has only reaped: the slots it took to
            // warm are all given back (the issue 11 bug kept them).
            T::CancelMaintain => {
                if !s.closed {
                    s.reap();
                }
            }
            T::Maintain => {
                if !s.closed {
                    s.reap();
                    let want = s.min_idle.saturating_sub(s.idle.len());
                    let n = if s.queue.is_empty() {
                        want.min(s.max - s.size)
                    } else {
                        0
                    };
                    s.size += n;
                    for _ in 0..n {
                        match s.create() {
                            Some(id) => s.return_obj(id),
                            None => s.release_slot(),
                        }
                    }
                }
            }
            T::SetCreateFails(b) => s.create_fails = b,
        }
        s
    }
}

// ---- the system under test ----------------------------------------------------------

type GetFuture = Pin<Box<dyn Future<Output = Result<Pooled<Mgr>, PoolError<Fail>>> + Send>>;

struct Sut {
    tally: Arc<Mutex<Tally>>,
    handles: Vec<Pool<Mgr>>,
    held: Vec<Pooled<Mgr>>,
    waiters: Vec<GetFuture>,
}

fn poll_once(fut: &mut GetFuture) -> Poll<Result<Pooled<Mgr>, PoolError<Fail>>> {
    fut.as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
}

fn outcome(sut: &mut Sut, result: Result<Pooled<Mgr>, PoolError<Fail>>) -> Outcome {
    match result {
        Ok(obj) => {
            let id = obj.id;
            sut.held.push(obj);
            Outcome::Got(id)
        }
        Err(PoolError::Closed) => Outcome::Closed,
        Err(PoolError::Create(Fail)) => Outcome::CreateFailed,
        Err(other) => panic!("unexpected pool error {other:?}"),
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the model's manager never blocks"),
    }
}

struct PoolMachine;

impl StateMachineTest for PoolMachine {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(s: &Model) -> Sut {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut config = PoolConfig::new(s.max);
        config.min_idle = s.min_idle;
        config.wait_timeout = None;
        config.create_timeout = None;
        config.recycle_timeout = None;
        config.create_backoff = Backoff::NONE;
        Sut {
            handles: vec![Pool::new(Mgr(tally.clone()), config)],
            tally,
            held: vec![],
            waiters: vec![],
        }
    }

    fn apply(mut sut: Sut, s: &Model, t: T) -> Sut {
        let got = match t {
            T::Get => {
                let pool = sut.handles[0].clone();
                let mut fut: GetFuture = Box::pin(async move { pool.get().await });
                match poll_once(&mut fut) {
                    Poll::Ready(result) => Some(outcome(&mut sut, result)),
                    Poll::Pending => {
                        sut.waiters.push(fut);
                        Some(Outcome::Pending)
                    }
                }
            }
            T::Return(i) => {
                drop(sut.held.remove(i));
                None
            }
            T::ReturnBroken(i) => {
                let obj = sut.held.remove(i);
                sut.tally.lock().unwrap().broken.insert(obj.id);
                drop(obj);
                None
            }
            T::Discard(i) => {
                Pooled::discard(sut.held.remove(i));
                None
            }
            T::PollWaiter(i) => match poll_once(&mut sut.waiters[i]) {
                Poll::Pending => Some(Outcome::Pending),
                Poll::Ready(result) => {
                    drop(sut.waiters.remove(i));
                    Some(outcome(&mut sut, result))
                }
            },
            T::CancelWaiter(i) => {
                drop(sut.waiters.remove(i));
                None
            }
            T::BreakIdle(_) => {
                // The model chose the id; mark the same one.
                let newly: Vec<u64> = s.broken.iter().copied().collect();
                sut.tally.lock().unwrap().broken.extend(newly);
                None
            }
            T::CloneHandle => {
                let clone = sut.handles[0].clone();
                sut.handles.push(clone);
                None
            }
            T::DropHandle => {
                drop(sut.handles.pop());
                None
            }
            T::Close => {
                sut.handles[0].close();
                None
            }
            T::Maintain => {
                block_on(sut.handles[0].maintain());
                None
            }
            T::CancelMaintain => {
                sut.tally.lock().unwrap().creates_hang = true;
                {
                    let mut pass = std::pin::pin!(sut.handles[0].maintain());
                    let cut = pass
                        .as_mut()
                        .poll(&mut Context::from_waker(std::task::Waker::noop()));
                    // Pending only if it reached a create; either way dropped.
                    let _ = cut;
                }
                sut.tally.lock().unwrap().creates_hang = false;
                None
            }
            T::SetCreateFails(b) => {
                sut.tally.lock().unwrap().create_fails = b;
                None
            }
        };
        assert_eq!(got, s.last, "outcome of {t:?}");
        sut
    }

    fn check_invariants(sut: &Sut, s: &Model) {
        let t = sut.tally.lock().unwrap();
        assert!(
            t.live.len() <= s.max,
            "bounded: {} live, max {}",
            t.live.len(),
            s.max
        );
        assert_eq!(
            t.next_id as usize - t.destroyed.len(),
            t.live.len(),
            "created − destroyed = live"
        );
        assert_eq!(t.live, s.live, "live objects differ from the model");
        assert_eq!(
            t.destroyed, s.destroyed,
            "destroyed objects differ from the model"
        );
        drop(t);
        if let Some(pool) = sut.handles.first() {
            let status = pool.status();
            assert_eq!(status.closed, s.closed);
            if !s.closed {
                assert_eq!(status.size, s.size, "size");
                assert_eq!(status.idle, s.idle.len(), "idle");
                assert_eq!(status.waiting, s.queue.len(), "waiting");
            }
        }
        let held: Vec<u64> = sut.held.iter().map(|o| o.id).collect();
        assert_eq!(held, s.held, "checked-out objects");
    }

    fn teardown(mut sut: Sut, s: Model) {
        // No slot lost: with every guard and waiter gone, an open pool still
        // serves a full set of `max` objects at once.
        sut.held.clear();
        sut.waiters.clear();
        if let Some(pool) = sut.handles.first().cloned()
            && !s.closed
        {
            sut.tally.lock().unwrap().create_fails = false;
            let all: Vec<_> = (0..s.max)
                .map(|_| block_on(pool.try_get()).expect("a slot was lost"))
                .collect();
            assert_eq!(pool.status().size, s.max);
            drop(all);
        }
        sut.handles.clear();
        let t = sut.tally.lock().unwrap();
        assert!(t.live.is_empty(), "objects outlived the pool: {:?}", t.live);
        assert_eq!(
            t.destroyed.len() as u64,
            t.next_id,
            "every object destroyed exactly once"
        );
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn pool_matches_its_reference_model(sequential 1..60 => PoolMachine);
}

#[test]
fn handoff_from_a_cancelled_granted_waiter_reaches_the_next() {
    let mut s = Model::init_state_for(1, 0);
    let mut sut = PoolMachine::init_test(&s);
    for t in [
        T::Get,
        T::Get,
        T::Get,
        T::Return(0),
        T::CancelWaiter(0),
        T::PollWaiter(0),
    ] {
        s = <Model as ReferenceStateMachine>::apply(s, &t);
        sut = PoolMachine::apply(sut, &s, t);
        PoolMachine::check_invariants(&sut, &s);
    }
    assert_eq!(s.last, Some(Outcome::Got(0)));
    PoolMachine::teardown(sut, s);
}
