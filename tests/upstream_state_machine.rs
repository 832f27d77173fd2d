//! A proptest state machine over real fixture processes: random requests,
//! concurrent bursts, crashes, cancelled calls, returns and pool drops.
//! Every request gets exactly one answer — the right one, or a clear error
//! where the model says its process is dead — and when each case ends no
//! process, zombie or descriptor is left. Alone in its binary because it
//! checks process-wide counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/upstream.rs"]
mod upstream_support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use serde_json::json;
use stdiopool::accounting::{Accounting, child_processes, open_fd_count, zombie_children};
use stdiopool::jsonrpc::{Id, code};
use stdiopool::pool::{Pool, Pooled};
use stdiopool::upstream::{CallError, UpstreamManager};
use upstream_support::*;

#[derive(Debug, Clone)]
enum T {
    Get,
    Echo(usize),
    Burst(usize, usize),
    Crash(usize),
    CancelSlow(usize),
    Return(usize),
    DropPool,
}

#[derive(Debug, Clone)]
struct Model {
    max: usize,
    /// Checked-out connections: whether each one's process was crashed.
    held: Vec<bool>,
}

impl ReferenceStateMachine for Model {
    type State = Model;
    type Transition = T;

    fn init_state() -> BoxedStrategy<Model> {
        (1usize..=2)
            .prop_map(|max| Model { max, held: vec![] })
            .boxed()
    }

    fn transitions(s: &Model) -> BoxedStrategy<T> {
        let mut options: Vec<(u32, BoxedStrategy<T>)> = vec![(1, Just(T::DropPool).boxed())];
        if s.held.len() < s.max {
            options.push((4, Just(T::Get).boxed()));
        }
        let n = s.held.len();
        if n > 0 {
            options.extend([
                (4, (0..n).prop_map(T::Echo).boxed()),
                (
                    2,
                    (0..n, 2usize..12).prop_map(|(i, k)| T::Burst(i, k)).boxed(),
                ),
                (1, (0..n).prop_map(T::Crash).boxed()),
                (1, (0..n).prop_map(T::CancelSlow).boxed()),
                (3, (0..n).prop_map(T::Return).boxed()),
            ]);
        }
        proptest::strategy::Union::new_weighted(options).boxed()
    }

    fn preconditions(s: &Model, t: &T) -> bool {
        match t {
            T::Get => s.held.len() < s.max,
            T::Echo(i) | T::Burst(i, _) | T::Crash(i) | T::CancelSlow(i) | T::Return(i) => {
                *i < s.held.len()
            }
            T::DropPool => true,
        }
    }

    fn apply(mut s: Model, t: &T) -> Model {
        match *t {
            T::Get => s.held.push(false),
            T::Crash(i) => s.held[i] = true,
            T::Return(i) => {
                s.held.remove(i);
            }
            T::Echo(_) | T::Burst(..) | T::CancelSlow(_) | T::DropPool => {}
        }
        s
    }
}

struct Sut {
    rt: tokio::runtime::Runtime,
    acc: Arc<Accounting>,
    pool: Pool<UpstreamManager>,
    held: Vec<Pooled<UpstreamManager>>,
    next: u64,
    fd_baseline: usize,
}

impl Sut {
    fn new_pool(&self, max: usize) -> Pool<UpstreamManager> {
        let _g = self.rt.enter();
        pool(manager(&self.acc), max, None)
    }
}

/// Checks one answer against what the model expects of its connection.
fn check_echo(res: Result<serde_json::Value, CallError>, id: &Id, msg: &str, crashed: bool) {
    if crashed {
        let err = res.expect_err("a crashed process cannot answer");
        assert_eq!(err.error_object().code, code::UPSTREAM_CLOSED);
    } else {
        let resp = res.unwrap();
        assert_eq!(resp["id"], id.to_value());
        assert_eq!(text(&resp), msg);
    }
}

struct Machine;

impl StateMachineTest for Machine {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(s: &Model) -> Sut {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let acc = Arc::new(Accounting::new());
        // Warm up tokio's process machinery before taking the fd baseline.
        rt.block_on(async {
            let p = pool(manager(&acc), 1, None);
            let conn = p.get().await.unwrap();
            pid_via_tool(&conn).await;
            drop(conn);
            drop(p);
            assert!(wait_no_live(&acc).await);
            assert_eq!(acc.wait_for_stops(LIMIT).await, 0);
        });
        let fd_baseline = open_fd_count().unwrap();
        let pool = {
            let _g = rt.enter();
            pool(manager(&acc), s.max, None)
        };
        Sut {
            rt,
            acc,
            pool,
            held: vec![],
            next: 0,
            fd_baseline,
        }
    }

    fn apply(mut sut: Sut, s: &Model, t: T) -> Sut {
        // `s` is the state after `t`; `crashed` reads what held before it.
        sut.next += 1;
        let n = sut.next;
        let _g = sut.rt.enter();
        match t {
            T::Get => {
                let conn = sut
                    .rt
                    .block_on(tokio::time::timeout(LIMIT, sut.pool.get()))
                    .unwrap()
                    .unwrap();
                assert!(!conn.is_broken());
                sut.held.push(conn);
            }
            T::Echo(i) => {
                let crashed = s.held[i];
                let id = if n.is_multiple_of(2) {
                    Id::from(n)
                } else {
                    Id::from(format!("e{n}"))
                };
                let msg = format!("echo {n}");
                let res = sut
                    .rt
                    .block_on(tokio::time::timeout(
                        QUICK,
                        sut.held[i].call(tool(id.clone(), "echo", json!({"message": msg})), None),
                    ))
                    .expect("every request gets an answer");
                check_echo(res, &id, &msg, crashed);
            }
            T::Burst(i, k) => {
                let crashed = s.held[i];
                let conn = &sut.held[i];
                let calls = (0..k).map(|j| {
                    let id = Id::from(format!("b{n}-{j}"));
                    let msg = format!("burst {n} {j}");
                    async move {
                        let res = conn
                            .call(tool(id.clone(), "echo", json!({"message": msg})), None)
                            .await;
                        (id, msg, res)
                    }
                });
                let results = sut
                    .rt
                    .block_on(tokio::time::timeout(QUICK, join_all(calls)))
                    .expect("every request gets an answer");
                assert_eq!(results.len(), k);
                for (id, msg, res) in results {
                    check_echo(res, &id, &msg, crashed);
                }
            }
            T::Crash(i) => {
                let res = sut
                    .rt
                    .block_on(tokio::time::timeout(
                        QUICK,
                        sut.held[i].call(tool(n, "crash", json!({})), None),
                    ))
                    .expect("a crash fails the request, never hangs it");
                let err = res.unwrap_err();
                assert_eq!(err.error_object().code, code::UPSTREAM_CLOSED);
                assert!(sut.held[i].is_broken());
            }
            T::CancelSlow(i) => {
                let conn = &sut.held[i];
                let out = sut.rt.block_on(tokio::time::timeout(
                    Duration::from_millis(30),
                    conn.call(tool(n, "sleep", json!({"ms": 60_000})), None),
                ));
                // Either cut off by the timeout (dropped in flight), or failed at
                // once because the process is dead; never answered.
                if let Ok(res) = out {
                    assert!(s.held[i], "a live process answered a 60 s sleep: {res:?}");
                    assert!(res.is_err());
                }
                assert_eq!(conn.in_flight(), 0, "the dropped call left its entry");
            }
            T::Return(i) => drop(sut.held.remove(i)),
            T::DropPool => {
                let fresh = sut.new_pool(s.max);
                drop(std::mem::replace(&mut sut.pool, fresh));
            }
        }
        drop(_g);
        sut
    }

    fn check_invariants(sut: &Sut, s: &Model) {
        assert_eq!(sut.held.len(), s.held.len());
        for (conn, crashed) in sut.held.iter().zip(&s.held) {
            assert_eq!(conn.in_flight(), 0, "an answered request left its entry");
            if *crashed {
                assert!(conn.is_broken());
            }
        }
        // Bounded: never more live processes than two pools' worth.
        assert!(sut.acc.live_pids().len() <= 2 * s.max + 2);
    }

    fn teardown(mut sut: Sut, _s: Model) {
        {
            let _g = sut.rt.enter();
            sut.held.clear();
            let fresh = sut.new_pool(1);
            drop(std::mem::replace(&mut sut.pool, fresh));
        }
        let acc = Arc::clone(&sut.acc);
        let baseline = sut.fd_baseline;
        let Sut { rt, pool, .. } = sut;
        rt.block_on(async move {
            drop(pool);
            assert_eq!(acc.wait_for_stops(LIMIT).await, 0);
            assert!(
                acc.live_pids().is_empty(),
                "live: {:?}",
                acc.live_children()
            );
            assert_eq!(zombie_children().unwrap(), Vec::<u32>::new());
            assert_eq!(child_processes().unwrap(), vec![]);
            let deadline = tokio::time::Instant::now() + LIMIT;
            let mut now = open_fd_count().unwrap();
            while now != baseline && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                now = open_fd_count().unwrap();
            }
            assert_eq!(now, baseline, "open fds before {baseline}, after {now}");
        });
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn every_request_gets_one_answer_and_nothing_leaks(sequential 1..20 => Machine);
}
