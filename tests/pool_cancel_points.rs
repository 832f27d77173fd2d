//! Every public async entry point cancelled at every await it can reach
//! (deadpool's `managed_cancellation.rs`, made exhaustive and deterministic).
//!
//! For `get`, `try_get` and `maintain` × `create` behaving Ok / Err / slow /
//! never × `recycle` behaving the same × four starting states, the future is
//! polled by hand `cut` times and then dropped, for every `cut` from 0 until
//! it completes. Polling by hand (not timeouts) puts the cut at each await in
//! turn, whatever the machine's load. Afterwards the pool must be whole: no
//! slot held by anybody, nobody waiting, the bound kept, and `max_size`
//! objects served at once within a second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use stdiopool::pool::{Backoff, Manager, ObjectMeta, Pool, PoolConfig, PoolError, Pooled};

const MAX: usize = 2;
/// More polls than any entry point needs to finish when nothing is `Never`.
const MAX_CUT: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    Ok,
    Err,
    /// Pending twice (waking itself), then Ok.
    Slow,
    Never,
}

const STEPS: [Step; 4] = [Step::Ok, Step::Err, Step::Slow, Step::Never];

impl Step {
    fn from(raw: u8) -> Step {
        STEPS[usize::from(raw)]
    }

    async fn run(self) -> Result<(), Fail> {
        match self {
            Step::Ok => Ok(()),
            Step::Err => Err(Fail),
            Step::Slow => {
                YieldTwice(0).await;
                Ok(())
            }
            Step::Never => std::future::pending().await,
        }
    }
}

struct YieldTwice(u8);

impl Future for YieldTwice {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 2 {
            return Poll::Ready(());
        }
        self.0 += 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step failed")]
struct Fail;

#[derive(Debug, Default)]
struct Behaviour {
    create: AtomicU8,
    recycle: AtomicU8,
    live: AtomicUsize,
    peak: AtomicUsize,
}

#[derive(Debug)]
struct Obj(Arc<Behaviour>);

impl Drop for Obj {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

#[derive(Debug)]
struct Mgr(Arc<Behaviour>);

impl Manager for Mgr {
    type Object = Obj;
    type Error = Fail;

    async fn create(&self) -> Result<Obj, Fail> {
        Step::from(self.0.create.load(SeqCst)).run().await?;
        let live = self.0.live.fetch_add(1, SeqCst) + 1;
        self.0.peak.fetch_max(live, SeqCst);
        Ok(Obj(self.0.clone()))
    }

    async fn recycle(&self, _obj: &mut Obj, _meta: &ObjectMeta) -> Result<(), Fail> {
        Step::from(self.0.recycle.load(SeqCst)).run().await
    }

    fn is_broken(&self, _obj: &Obj) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Get,
    TryGet,
    Maintain,
}

/// The pool's state when the entry point starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// No object yet: the entry point creates.
    Empty,
    /// One idle object: the entry point recycles it.
    Idle,
    /// Both objects checked out; after the first poll one is returned, so a
    /// waiting `get` is granted it (and recycles it).
    FullThenReturned,
    /// Both checked out; after the first poll one is discarded, so a waiting
    /// `get` is granted its slot (and creates).
    FullThenDiscarded,
}

const STARTS: [Start; 4] = [
    Start::Empty,
    Start::Idle,
    Start::FullThenReturned,
    Start::FullThenDiscarded,
];

type Out = Option<Result<Pooled<Mgr>, PoolError<Fail>>>;

fn entry_future(pool: &Pool<Mgr>, entry: Entry) -> Pin<Box<dyn Future<Output = Out> + '_>> {
    match entry {
        Entry::Get => Box::pin(async move { Some(pool.get().await) }),
        Entry::TryGet => Box::pin(async move { Some(pool.try_get().await) }),
        Entry::Maintain => Box::pin(async move {
            pool.maintain().await;
            None
        }),
    }
}

fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(std::task::Waker::noop()))
}

/// Runs one scenario; `true` if the entry point completed before the cut.
async fn scenario(entry: Entry, create: Step, recycle: Step, start: Start, cut: usize) -> bool {
    let label = format!("{entry:?} create={create:?} recycle={recycle:?} {start:?} cut={cut}");
    let behaviour = Arc::new(Behaviour::default());
    let mut config = PoolConfig::new(MAX);
    config.min_idle = MAX;
    config.wait_timeout = None;
    config.create_timeout = None;
    config.recycle_timeout = None;
    config.create_backoff = Backoff::NONE;
    let pool = Pool::new(Mgr(behaviour.clone()), config);

    let mut held: Vec<Pooled<Mgr>> = Vec::new();
    match start {
        Start::Empty => {}
        Start::Idle => drop(pool.get().await.unwrap()),
        Start::FullThenReturned | Start::FullThenDiscarded => {
            held.push(pool.get().await.unwrap());
            held.push(pool.get().await.unwrap());
        }
    }
    behaviour.create.store(create as u8, SeqCst);
    behaviour.recycle.store(recycle as u8, SeqCst);

    let mut completed = false;
    {
        let mut fut = entry_future(&pool, entry);
        for poll in 0..cut {
            if let Poll::Ready(out) = poll_once(fut.as_mut()) {
                drop(out);
                completed = true;
                break;
            }
            if poll == 0 {
                match start {
                    Start::FullThenReturned => drop(held.pop()),
                    Start::FullThenDiscarded => {
                        if let Some(obj) = held.pop() {
                            Pooled::discard(obj);
                        }
                    }
                    Start::Empty | Start::Idle => {}
                }
            }
        }
        // The cut: the future is dropped wherever it stands.
    }
    held.clear();

    let status = pool.status();
    assert_eq!(status.waiting, 0, "nobody waits: {label} {status:?}");
    assert_eq!(status.in_use, 0, "no slot held: {label} {status:?}");
    assert!(status.size <= MAX, "bounded: {label} {status:?}");
    assert_eq!(
        behaviour.live.load(SeqCst),
        status.size,
        "live objects = idle objects: {label} {status:?}"
    );
    assert!(behaviour.peak.load(SeqCst) <= MAX, "bounded: {label}");

    // Whole: with healthy steps, `MAX` objects at once, in bounded time.
    behaviour.create.store(Step::Ok as u8, SeqCst);
    behaviour.recycle.store(Step::Ok as u8, SeqCst);
    let all = tokio::time::timeout(
        Duration::from_secs(1),
        futures_util::future::join_all((0..MAX).map(|_| pool.get())),
    )
    .await
    .unwrap_or_else(|_| panic!("the pool serves {MAX} objects within a second: {label}"));
    for got in &all {
        assert!(got.is_ok(), "{label}: {got:?}");
    }
    assert_eq!(pool.status().size, MAX, "{label}");
    drop(all);
    drop(pool);
    assert_eq!(behaviour.live.load(SeqCst), 0, "leaked objects: {label}");
    completed
}

#[tokio::test]
async fn every_entry_point_cancelled_at_every_await_leaves_the_pool_whole() {
    let mut scenarios = 0;
    for entry in [Entry::Get, Entry::TryGet, Entry::Maintain] {
        for create in STEPS {
            for recycle in STEPS {
                for start in STARTS {
                    for cut in 0..=MAX_CUT {
                        scenarios += 1;
                        if scenario(entry, create, recycle, start, cut).await {
                            break; // Later cuts fall after the end.
                        }
                    }
                }
            }
        }
    }
    // Each of the 192 combinations is cut at least before its first poll
    // and after it.
    assert!(scenarios >= 3 * 4 * 4 * 4 * 2, "{scenarios} scenarios");
}

/// The cut points the matrix above relies on are real: a `get` that waits,
/// is granted, recycles slowly, is cut at each of those awaits.
#[tokio::test]
async fn a_waiting_get_passes_through_queue_grant_and_recycle_awaits() {
    // Cut 1: queued. Cut 2: granted, mid-recycle.
    for cut in 1..=2 {
        assert!(
            !scenario(
                Entry::Get,
                Step::Ok,
                Step::Slow,
                Start::FullThenReturned,
                cut
            )
            .await,
            "cut {cut} lands before the end"
        );
    }
    let mut ends = false;
    for cut in 3..=MAX_CUT {
        ends |= scenario(
            Entry::Get,
            Step::Ok,
            Step::Slow,
            Start::FullThenReturned,
            cut,
        )
        .await;
    }
    assert!(ends, "the get completes within {MAX_CUT} polls");
}
