//! The async bridge (SPEC §9, B1–B6) against real executors: tokio's
//! current-thread runtime with a `LocalSet`, `futures`' `LocalPool` and
//! `block_on`, and hand-polled tasks where the test needs to see each poll.

use std::cell::{Cell, RefCell};
use std::future::{self, Future};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use greenlet::bridge::{self, Task};
use greenlet::{greenlet_local, settrace, Error, Event, Generator, Greenlet, GreenletExit};

#[path = "support/child.rs"]
mod child;

#[path = "../examples/async_bridge.rs"]
#[allow(dead_code)]
mod async_bridge;

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter::default());
    (c.clone(), Waker::from(c))
}

/// Polls once with `waker`.
fn poll_with<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// A future that is pending until its gate opens, keeping the waker of the
/// last poll (and counting its polls).
#[derive(Clone, Default)]
struct Gate(Rc<GateState>);

#[derive(Default)]
struct GateState {
    open: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    polls: Cell<usize>,
}

impl Gate {
    fn open(&self) {
        self.0.open.set(true);
        if let Some(w) = self.0.waker.borrow_mut().take() {
            w.wake();
        }
    }
    fn wait(&self) -> GateFuture {
        GateFuture(self.0.clone())
    }
}

struct GateFuture(Rc<GateState>);

impl Future for GateFuture {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.polls.set(self.0.polls.get() + 1);
        if self.0.open.get() {
            Poll::Ready(())
        } else {
            *self.0.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Sets its flag when dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A future that is never ready, setting `dropped` when dropped and counting
/// its polls.
struct Forever {
    polls: Rc<Cell<usize>>,
    _flag: DropFlag,
}

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        Poll::Pending
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<not a string>".into()
    }
}

fn tokio_local<F: Future>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, fut)
}

#[test]
fn tokio_local_set_runs_tasks_that_wait_for_timers() {
    let out = tokio_local(async {
        let handles: Vec<_> = (0..20u64)
            .map(|i| {
                tokio::task::spawn_local(bridge::spawn(move || {
                    let mut acc = i;
                    for step in 0..3 {
                        bridge::wait(tokio::time::sleep(Duration::from_millis((i + step) % 4)));
                        acc = acc * 10 + step;
                    }
                    acc
                }))
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    let expected: Vec<u64> = (0..20).map(|i| ((i * 10) * 10 + 1) * 10 + 2).collect();
    assert_eq!(out, expected);
}

#[test]
fn tasks_are_awaited_like_any_future_in_tokio() {
    let out = tokio_local(async {
        let a = bridge::spawn(|| bridge::wait(async { 1 }) + 1);
        let b = bridge::spawn(|| {
            let (tx, rx) = futures::channel::oneshot::channel::<u32>();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.send(40).unwrap();
            });
            bridge::wait(rx).unwrap()
        });
        a.await + b.await
    });
    assert_eq!(out, 42);
}

#[test]
fn futures_local_pool_interleaves_tasks() {
    use futures::task::LocalSpawnExt;
    let mut pool = futures::executor::LocalPool::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let gates: Vec<Gate> = (0..3).map(|_| Gate::default()).collect();
    for (i, gate) in gates.iter().enumerate() {
        let (log, gate) = (log.clone(), gate.clone());
        pool.spawner()
            .spawn_local(bridge::spawn(move || {
                log.borrow_mut().push(format!("{i} waits"));
                bridge::wait(gate.wait());
                log.borrow_mut().push(format!("{i} done"));
            }))
            .unwrap();
    }
    pool.run_until_stalled();
    assert_eq!(*log.borrow(), ["0 waits", "1 waits", "2 waits"]);
    gates[1].open();
    pool.run_until_stalled();
    gates[2].open();
    gates[0].open();
    pool.run();
    assert_eq!(
        *log.borrow(),
        ["0 waits", "1 waits", "2 waits", "1 done", "2 done", "0 done"]
    );
}

#[test]
fn plain_block_on_runs_a_task() {
    let task = bridge::spawn(|| {
        let mut sum = 0;
        for i in 0..100 {
            sum += bridge::wait(async move { i });
        }
        sum
    });
    assert_eq!(futures::executor::block_on(task), 4950);
}

#[test]
fn nothing_runs_until_the_first_poll_and_each_poll_resumes_the_wait() {
    let started = Rc::new(Cell::new(false));
    let gate = Gate::default();
    let mut task = bridge::spawn({
        let (started, gate) = (started.clone(), gate.clone());
        move || {
            started.set(true);
            bridge::wait(gate.wait());
            "through"
        }
    });
    assert!(!started.get());
    assert!(format!("{task:?}").contains("unpolled"));
    let (_, waker) = counting_waker();
    assert_eq!(poll_with(&mut task, &waker), Poll::Pending);
    assert!(started.get());
    assert!(format!("{task:?}").contains("waiting"));
    assert_eq!(gate.0.polls.get(), 1);
    // A poll before the gate opens polls the future again and stays pending.
    assert_eq!(poll_with(&mut task, &waker), Poll::Pending);
    assert_eq!(gate.0.polls.get(), 2);
    gate.open();
    assert_eq!(poll_with(&mut task, &waker), Poll::Ready("through"));
    assert!(format!("{task:?}").contains("finished"));
}

#[test]
fn a_task_repolled_with_a_new_waker_wakes_through_the_new_one() {
    let gate = Gate::default();
    let mut task = bridge::spawn({
        let gate = gate.clone();
        move || bridge::wait(gate.wait())
    });
    let (first, first_waker) = counting_waker();
    let (second, second_waker) = counting_waker();
    assert!(poll_with(&mut task, &first_waker).is_pending());
    assert!(gate
        .0
        .waker
        .borrow()
        .as_ref()
        .unwrap()
        .will_wake(&first_waker));
    assert!(poll_with(&mut task, &second_waker).is_pending());
    assert!(gate
        .0
        .waker
        .borrow()
        .as_ref()
        .unwrap()
        .will_wake(&second_waker));
    gate.open();
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    assert!(poll_with(&mut task, &second_waker).is_ready());
}

#[test]
fn a_panic_in_the_task_comes_out_of_its_await() {
    let task = bridge::spawn(|| -> u32 {
        bridge::wait(async {});
        panic!("boom in the task")
    });
    let payload =
        panic::catch_unwind(AssertUnwindSafe(|| futures::executor::block_on(task))).unwrap_err();
    assert_eq!(panic_message(&*payload), "boom in the task");

    // In tokio, through the JoinHandle of the local task.
    let err = tokio_local(async {
        tokio::task::spawn_local(bridge::spawn(|| -> u32 {
            bridge::wait(tokio::time::sleep(Duration::from_millis(1)));
            panic!("boom under tokio")
        }))
        .await
        .unwrap_err()
    });
    assert!(err.is_panic());
    assert_eq!(panic_message(&*err.into_panic()), "boom under tokio");

    // And out of an `.await` of the task inside an async fn.
    let caught = futures::executor::block_on(async {
        let inner = bridge::spawn(|| -> u8 { panic!("inner") });
        futures::FutureExt::catch_unwind(AssertUnwindSafe(inner)).await
    });
    assert_eq!(panic_message(&*caught.unwrap_err()), "inner");
}

#[test]
fn a_task_is_not_polled_after_ready() {
    let mut task = bridge::spawn(|| 5);
    let (_, waker) = counting_waker();
    assert_eq!(poll_with(&mut task, &waker), Poll::Ready(5));
    let payload =
        panic::catch_unwind(AssertUnwindSafe(|| poll_with(&mut task, &waker))).unwrap_err();
    assert!(panic_message(&*payload).contains("polled after it completed"));
}

#[test]
fn dropping_a_suspended_task_unwinds_its_stack_and_drops_the_pending_future() {
    let on_stack = Rc::new(Cell::new(false));
    let future_dropped = Rc::new(Cell::new(false));
    let saw_exit = Rc::new(Cell::new(false));
    let after_wait = Rc::new(Cell::new(false));
    let polls = Rc::new(Cell::new(0));
    let mut task = bridge::spawn({
        let (on_stack, future_dropped, saw_exit, after_wait, polls) = (
            on_stack.clone(),
            future_dropped.clone(),
            saw_exit.clone(),
            after_wait.clone(),
            polls.clone(),
        );
        move || {
            let _guard = DropFlag(on_stack);
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                bridge::wait(Forever {
                    polls,
                    _flag: DropFlag(future_dropped),
                })
            }));
            // GreenletExit is what the pending wait raised.
            let payload = r.unwrap_err();
            saw_exit.set(payload.is::<GreenletExit>());
            after_wait.set(true);
            panic::resume_unwind(payload)
        }
    });
    let (_, waker) = counting_waker();
    assert!(poll_with(&mut task, &waker).is_pending());
    assert_eq!(polls.get(), 1);
    assert!(!on_stack.get() && !future_dropped.get());
    drop(task);
    assert!(future_dropped.get(), "the pending future was dropped");
    assert!(saw_exit.get(), "GreenletExit was raised from the wait");
    assert!(on_stack.get(), "the destructors on the task's stack ran");
    assert!(after_wait.get());
    assert_eq!(polls.get(), 1, "the future was not polled again");
}

#[test]
fn dropping_tokio_tasks_mid_wait_runs_their_destructors() {
    let dropped = Rc::new(Cell::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    for _ in 0..10 {
        let dropped = dropped.clone();
        local.spawn_local(bridge::spawn(move || {
            let _guard = DropCount(dropped);
            bridge::wait(tokio::time::sleep(Duration::from_secs(3600)));
        }));
    }
    local.block_on(&rt, async {
        tokio::time::sleep(Duration::from_millis(20)).await
    });
    assert_eq!(dropped.get(), 0);
    drop(local);
    assert_eq!(dropped.get(), 10);

    struct DropCount(Rc<Cell<u32>>);
    impl Drop for DropCount {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
}

#[test]
fn an_unpolled_task_drops_its_closure_without_running_it() {
    let ran = Rc::new(Cell::new(false));
    let captured = Rc::new(Cell::new(false));
    let task = bridge::spawn({
        let (ran, flag) = (ran.clone(), DropFlag(captured.clone()));
        move || {
            let _flag = flag;
            ran.set(true);
        }
    });
    drop(task);
    assert!(captured.get() && !ran.get());
}

fn probe() -> (Rc<Cell<bool>>, Rc<Cell<usize>>, impl Future<Output = u8>) {
    let dropped = Rc::new(Cell::new(false));
    let polls = Rc::new(Cell::new(0));
    let (d, p) = (DropFlag(dropped.clone()), polls.clone());
    let fut = async move {
        let _d = d;
        p.set(p.get() + 1);
        7
    };
    (dropped, polls, fut)
}

#[test]
fn wait_outside_a_task_panics_naming_bridge_spawn_and_drops_the_future_unpolled() {
    assert!(!bridge::can_wait());
    let (dropped, polls, fut) = probe();
    let payload = panic::catch_unwind(AssertUnwindSafe(|| bridge::wait(fut))).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("bridge::spawn"), "{message}");
    assert!(dropped.get());
    assert_eq!(polls.get(), 0);

    let (dropped, polls, fut) = probe();
    assert_eq!(bridge::try_wait(fut), Err(Error::NotInTask));
    assert!(dropped.get());
    assert_eq!(polls.get(), 0);
    assert!(Error::NotInTask.to_string().contains("bridge::spawn"));

    // In a plain greenlet too: being in a greenlet is not being in a task.
    let g = Greenlet::new(|_| (bridge::can_wait(), bridge::try_wait(async { 1 })));
    assert_eq!(
        g.switch(())
            .downcast::<(bool, Result<i32, Error>)>()
            .unwrap(),
        (false, Err(Error::NotInTask))
    );

    // In an async fn polled by an executor, but not inside a task.
    let inside_async = futures::executor::block_on(async { bridge::try_wait(async { 1 }) });
    assert_eq!(inside_async, Err(Error::NotInTask));
}

#[test]
fn wait_inside_a_future_that_a_wait_polls_is_refused() {
    let task = bridge::spawn(|| {
        let (can, nested) = bridge::wait(async {
            let (dropped, polls, fut) = probe();
            let r = bridge::try_wait(fut);
            assert!(dropped.get() && polls.get() == 0);
            (bridge::can_wait(), r)
        });
        let panicked = panic::catch_unwind(|| bridge::wait(async { bridge::wait(async { 1 }) }));
        // The task goes on waiting normally afterwards.
        let after = bridge::wait(async { 3 });
        (can, nested, panic_message(&*panicked.unwrap_err()), after)
    });
    let (can, nested, message, after) = futures::executor::block_on(task);
    assert!(!can);
    assert_eq!(nested, Err(Error::NotInTask));
    assert!(message.contains("bridge::spawn"), "{message}");
    assert_eq!(after, 3);
}

#[test]
fn a_task_may_wait_for_other_tasks() {
    let out = tokio_local(async {
        let outer = bridge::spawn(|| {
            let inner = bridge::spawn(|| {
                bridge::wait(tokio::time::sleep(Duration::from_millis(1)));
                20
            });
            let a = bridge::wait(inner);
            let (b, c) = bridge::wait(futures::future::join(
                bridge::spawn(|| {
                    bridge::wait(tokio::time::sleep(Duration::from_millis(2)));
                    true
                }),
                bridge::spawn(|| {
                    bridge::wait(tokio::time::sleep(Duration::from_millis(1)));
                    22
                }),
            ));
            assert!(b);
            a + c
        });
        outer.await
    });
    assert_eq!(out, 42);
}

#[test]
fn a_child_greenlet_inside_a_task_waits_and_the_next_poll_resumes_it() {
    let out = tokio_local(async {
        bridge::spawn(|| {
            let root = Greenlet::current();
            let child = Greenlet::new(move |_| {
                assert!(bridge::can_wait());
                let mut acc = 0;
                for i in 1..=3u32 {
                    bridge::wait(tokio::time::sleep(Duration::from_millis(1)));
                    acc += i;
                }
                (acc, Greenlet::current().parent() == Some(root))
            });
            let (acc, parent_was_root) = child.switch(()).downcast::<(u32, bool)>().unwrap();
            assert!(parent_was_root);
            acc * 10
        })
        .await
    });
    assert_eq!(out, 60);
}

#[test]
fn a_generator_inside_a_task_waits_between_yields() {
    let out = tokio_local(async {
        bridge::spawn(|| {
            let ticks = Generator::new(|y| {
                for i in 0..5u64 {
                    bridge::wait(tokio::time::sleep(Duration::from_millis(i % 2)));
                    y.yield_(i * i);
                }
                "done"
            });
            let mut ticks = ticks;
            let squares: Vec<u64> = ticks.by_ref().collect();
            (squares, ticks.return_value())
        })
        .await
    });
    assert_eq!(out, (vec![0, 1, 4, 9, 16], Some("done")));
}

#[test]
fn dropping_a_task_whose_generator_waits_unwinds_both() {
    let gen_stack = Rc::new(Cell::new(false));
    let root_stack = Rc::new(Cell::new(false));
    let future_dropped = Rc::new(Cell::new(false));
    let mut task = bridge::spawn({
        let (gen_stack, root_stack, future_dropped) = (
            gen_stack.clone(),
            root_stack.clone(),
            future_dropped.clone(),
        );
        move || {
            let _root = DropFlag(root_stack);
            let mut g = Generator::<u8, ()>::new(move |y| {
                let _gen = DropFlag(gen_stack);
                bridge::wait(Forever {
                    polls: Rc::default(),
                    _flag: DropFlag(future_dropped),
                });
                y.yield_(1);
            });
            g.next();
            unreachable!("the generator never yields")
        }
    });
    let (_, waker) = counting_waker();
    assert!(poll_with(&mut task, &waker).is_pending());
    drop(task);
    assert!(future_dropped.get() && gen_stack.get() && root_stack.get());
}

/// Pending once (waking its waker), then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn each_poll_makes_the_polling_greenlet_the_parent() {
    let parents = Rc::new(RefCell::new(Vec::new()));
    let task = Rc::new(RefCell::new(bridge::spawn({
        let parents = parents.clone();
        move || {
            for _ in 0..3 {
                parents
                    .borrow_mut()
                    .push(Greenlet::current().parent().unwrap());
                bridge::wait(YieldOnce(false));
            }
            parents
                .borrow_mut()
                .push(Greenlet::current().parent().unwrap());
            "end"
        }
    })));
    let (_, waker) = counting_waker();
    let poll_from = |g: &Greenlet| {
        let task = task.clone();
        let waker = waker.clone();
        g.switch(Box::new(move || poll_with(&mut *task.borrow_mut(), &waker))
            as Box<dyn FnOnce() -> Poll<&'static str>>)
    };
    let pollers: Vec<Greenlet> = (0..2)
        .map(|_| {
            Greenlet::new(|f| {
                let mut f = f
                    .downcast::<Box<dyn FnOnce() -> Poll<&'static str>>>()
                    .unwrap();
                loop {
                    let r = f();
                    f = Greenlet::main().switch(r).downcast().unwrap();
                }
            })
        })
        .collect();
    assert!(poll_from(&pollers[0])
        .downcast::<Poll<&str>>()
        .unwrap()
        .is_pending());
    assert!(poll_from(&pollers[1])
        .downcast::<Poll<&str>>()
        .unwrap()
        .is_pending());
    assert!(poll_with(&mut *task.borrow_mut(), &waker).is_pending());
    assert_eq!(
        poll_from(&pollers[0]).downcast::<Poll<&str>>().unwrap(),
        Poll::Ready("end")
    );
    let seen = parents.borrow();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0], pollers[0]);
    assert_eq!(seen[1], pollers[1]);
    assert_eq!(seen[2], Greenlet::main());
    assert_eq!(seen[3], pollers[0]);
}

#[test]
fn a_task_polled_from_one_of_its_own_greenlets_is_refused() {
    let task_slot: Rc<RefCell<Option<Task<()>>>> = Rc::default();
    let child_slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let task = bridge::spawn({
        let (task_slot, child_slot) = (task_slot.clone(), child_slot.clone());
        move || {
            // A child of the task's greenlet, suspended under it; main resumes
            // it between polls, and it polls the task.
            let child = Greenlet::new(move |_| {
                Greenlet::current().parent().unwrap().switch(());
                let mut task = task_slot.borrow_mut().take().unwrap();
                let (_, waker) = counting_waker();
                let r = panic::catch_unwind(AssertUnwindSafe(|| poll_with(&mut task, &waker)));
                *task_slot.borrow_mut() = Some(task);
                Greenlet::main().switch(panic_message(&*r.unwrap_err()));
            });
            child.switch(());
            *child_slot.borrow_mut() = Some(child);
            bridge::wait(future::pending::<()>());
        }
    });
    let mut task = task;
    let (_, waker) = counting_waker();
    assert!(poll_with(&mut task, &waker).is_pending());
    *task_slot.borrow_mut() = Some(task);
    let child = child_slot.borrow_mut().take().unwrap();
    let message = child.switch(()).downcast::<String>().unwrap();
    assert!(
        message.contains("from one of its own greenlets"),
        "{message}"
    );
    // Still waiting, and still droppable.
    let task = task_slot.borrow_mut().take().unwrap();
    assert!(format!("{task:?}").contains("waiting"));
    drop(child);
    drop(task);
}

#[test]
fn switching_out_of_a_task_and_back_between_waits_is_ordinary_switching() {
    // An outside greenlet (made outside the task) cannot wait for the task,
    // but the task's greenlet may visit it and come back, then wait as usual.
    let outside = Greenlet::new(|task_greenlet| {
        let back: Greenlet = task_greenlet.downcast().unwrap();
        let seen = (bridge::can_wait(), bridge::try_wait(async { 1 }));
        back.switch(seen);
    });
    let task = bridge::spawn(move || {
        bridge::wait(async {});
        let seen = outside
            .switch(Greenlet::current())
            .downcast::<(bool, Result<i32, Error>)>()
            .unwrap();
        let after = bridge::wait(async { 2 });
        (seen, after)
    });
    assert_eq!(
        futures::executor::block_on(task),
        ((false, Err(Error::NotInTask)), 2)
    );
}

#[test]
fn a_task_greenlet_that_switches_to_its_poller_makes_the_poll_panic() {
    let unwound = Rc::new(Cell::new(false));
    let mut task = bridge::spawn({
        let unwound = unwound.clone();
        move || {
            let _flag = DropFlag(unwound);
            // Straight to main, which polls us, bypassing wait.
            Greenlet::main().switch("sideways");
            unreachable!("nobody resumes this greenlet")
        }
    });
    let (_, waker) = counting_waker();
    let payload =
        panic::catch_unwind(AssertUnwindSafe(|| poll_with(&mut task, &waker))).unwrap_err();
    let message = panic_message(&*payload);
    assert!(
        message.contains("switched to the greenlet polling it"),
        "{message}"
    );
    assert!(message.contains("&str"), "{message}");
    assert!(format!("{task:?}").contains("astray"));
    let again = panic::catch_unwind(AssertUnwindSafe(|| poll_with(&mut task, &waker))).unwrap_err();
    assert!(panic_message(&*again).contains("cannot go on"));
    assert!(!unwound.get());
    drop(task); // kill on drop still unwinds the stranded greenlet
    assert!(unwound.get());
}

#[test]
fn a_parked_greenlet_switched_to_from_outside_panics_in_its_wait() {
    let handle: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let mut task = bridge::spawn({
        let handle = handle.clone();
        move || {
            *handle.borrow_mut() = Some(Greenlet::current());
            bridge::wait(Forever {
                polls: Rc::default(),
                _flag: DropFlag(Rc::default()),
            })
        }
    });
    let (_, waker) = counting_waker();
    assert!(poll_with(&mut task, &waker).is_pending());
    let g = handle.borrow_mut().take().unwrap();
    // Between polls the task's greenlet's parent is main: the panic comes here.
    let payload = panic::catch_unwind(AssertUnwindSafe(|| g.switch(99u32))).unwrap_err();
    let message = panic_message(&*payload);
    assert!(
        message.contains("something other than its task's poll"),
        "{message}"
    );
    assert!(g.is_dead());
    let after = panic::catch_unwind(AssertUnwindSafe(|| poll_with(&mut task, &waker))).unwrap_err();
    assert!(panic_message(&*after).contains("after it completed"));
}

/// A future whose poll switches to the main greenlet (the poller) and so
/// leaves the task in the middle of that poll.
struct SwitchesOut;

impl Future for SwitchesOut {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Greenlet::main().switch("out of the poll");
        Poll::Ready(())
    }
}

#[test]
fn a_poll_that_would_end_while_a_wait_borrows_its_context_aborts() {
    if child::in_child() {
        let mut task = bridge::spawn(|| bridge::wait(SwitchesOut));
        let (_, waker) = counting_waker();
        let _ = poll_with(&mut task, &waker);
        unreachable!("the poll aborts the process");
    }
    let out = child::run_child("a_poll_that_would_end_while_a_wait_borrows_its_context_aborts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child went on: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
    }
    assert!(
        stderr.contains("the Context it borrows would dangle"),
        "{stderr}"
    );
    assert!(!stderr.contains("unreachable"), "{stderr}");
}

#[test]
fn ten_thousand_tasks_interleave_timers_and_every_result_is_checked() {
    const N: u64 = 10_000;
    let results = tokio_local(async {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let task = Greenlet::builder()
                    .stack_size(64 << 10)
                    .spawn_task(move || {
                        let mut acc = i;
                        for step in 0..3u64 {
                            bridge::wait(tokio::time::sleep(Duration::from_millis(
                                (i * 7 + step) % 5,
                            )));
                            acc = acc.wrapping_mul(31).wrapping_add(step);
                        }
                        (i, acc)
                    })
                    .unwrap();
                tokio::task::spawn_local(task)
            })
            .collect();
        let mut out = Vec::with_capacity(N as usize);
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    assert_eq!(results.len(), N as usize);
    for (k, (i, acc)) in results.into_iter().enumerate() {
        assert_eq!(i, k as u64);
        let mut want = i;
        for step in 0..3 {
            want = want.wrapping_mul(31).wrapping_add(step);
        }
        assert_eq!(acc, want, "task {i}");
    }
}

greenlet_local! { static WHO: Cell<u32> = Cell::new(u32::MAX); }

#[test]
fn greenlet_locals_are_per_task_across_waits() {
    WHO.with(|w| w.set(7));
    let out = tokio_local(async {
        let handles: Vec<_> = (0..50u32)
            .map(|i| {
                tokio::task::spawn_local(bridge::spawn(move || {
                    let fresh = WHO.with(Cell::get);
                    WHO.with(|w| w.set(i));
                    for k in 0..3 {
                        bridge::wait(tokio::time::sleep(Duration::from_millis(u64::from(
                            (i + k) % 3,
                        ))));
                        assert_eq!(WHO.with(Cell::get), i);
                    }
                    (fresh, WHO.with(Cell::get))
                }))
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    for (i, (fresh, last)) in out.into_iter().enumerate() {
        assert_eq!(fresh, u32::MAX);
        assert_eq!(last, i as u32);
    }
    assert_eq!(WHO.with(Cell::get), 7, "main's value is its own");
}

#[test]
fn tracing_sees_each_poll_switch_into_the_task_and_back() {
    let hops = Rc::new(RefCell::new(Vec::new()));
    let gate = Gate::default();
    let mut task = bridge::spawn({
        let gate = gate.clone();
        move || {
            bridge::wait(gate.wait());
            Greenlet::current()
        }
    });
    let sink = hops.clone();
    let previous = settrace(Some(Rc::new(
        move |e: Event, from: &Greenlet, to: &Greenlet| {
            sink.borrow_mut().push((e, from.is_main(), to.is_main()))
        },
    )));
    let (_, waker) = counting_waker();
    assert!(poll_with(&mut task, &waker).is_pending());
    gate.open();
    let root = match poll_with(&mut task, &waker) {
        Poll::Ready(g) => g,
        Poll::Pending => panic!("the gate is open"),
    };
    settrace(previous);
    assert!(root.is_dead());
    use Event::Switch;
    assert_eq!(
        *hops.borrow(),
        [
            (Switch, true, false), // first poll: into the task
            (Switch, false, true), // pending: back to the poller
            (Switch, true, false), // second poll
            (Switch, false, true), // the task returned
        ]
    );
}

#[test]
fn a_killed_task_greenlet_raises_greenlet_exit_from_the_poll() {
    let mut task = bridge::spawn(|| -> u8 { panic::resume_unwind(Box::new(GreenletExit)) });
    let (_, waker) = counting_waker();
    let payload =
        panic::catch_unwind(AssertUnwindSafe(|| poll_with(&mut task, &waker))).unwrap_err();
    assert!(payload.is::<GreenletExit>());
}

#[test]
fn a_pending_wait_costs_no_leaked_handles() {
    // A parked greenlet must not keep its poller alive: a poller greenlet
    // that owns the task is killed (and the task with it) when dropped.
    let unwound = Rc::new(Cell::new(false));
    let poller = Greenlet::new({
        let unwound = unwound.clone();
        move |_| {
            let mut task = bridge::spawn(move || {
                let _flag = DropFlag(unwound);
                bridge::wait(future::pending::<()>());
            });
            let (_, waker) = counting_waker();
            assert!(poll_with(&mut task, &waker).is_pending());
            Greenlet::main().switch(());
            drop(task);
        }
    });
    poller.switch(());
    assert!(poller.is_active());
    drop(poller);
    assert!(unwound.get());
}

#[test]
fn echo_server_with_sync_per_connection_code_serves_a_checked_loopback_load() {
    let (conns, msgs) = load_size();
    let report = async_bridge::run(async_bridge::Server::Bridge, conns, msgs).unwrap();
    assert_eq!(report.connections, conns);
    assert_eq!(
        report.bytes,
        async_bridge::loopback::total_bytes(conns, msgs)
    );
    eprintln!(
        "bridge echo: {conns} connections x {msgs} messages, {} bytes in {:.2?}",
        report.bytes, report.elapsed
    );
}

/// 1,000 connections × 100 messages; `GREENLET_LOAD=CONNS,MSGS` changes it
/// (test.sh runs the full size natively and a smaller one under qemu), loudly.
fn load_size() -> (usize, usize) {
    match std::env::var("GREENLET_LOAD") {
        Ok(v) => {
            let (c, m) = v.split_once(',').expect("GREENLET_LOAD=CONNS,MSGS");
            let size = (c.parse().unwrap(), m.parse().unwrap());
            eprintln!("!!! GREENLET_LOAD: the loopback load runs {} connections x {} messages, not 1,000 x 100", size.0, size.1);
            size
        }
        Err(_) => (1000, 100),
    }
}
