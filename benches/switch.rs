//! Switch-path benchmarks, side by side with peer crates in the same run.
//!
//! | benchmark | greenlet | corosensei | context (Boost fcontext) |
//! | --- | --- | --- | --- |
//! | round trip, unit value | switch there and back | resume + suspend | resume + resume |
//! | round trip, u64 | same, carrying a u64 each way | same | same (in the data word) |
//! | round trip, in a non-inlined helper | the switch one call deeper, the value returned (`in_helper`) or dropped there (`in_helper_dropping`) | resume one call deeper | — |
//! | create + run + die, pooled/reused stack | `Greenlet::new` from the pool | `with_stack` + `into_stack` | — |
//! | create + run + die, fresh stack | pool trimmed each time | `DefaultStack::new` each time | — |
//! | throw round trip | `throw` caught inside, switch back | — | — |
//! | kill on drop | drop a suspended greenlet | drop a suspended coroutine (forced unwind) | — |
//! | 3-greenlet ring | a -> b -> c -> a | — | — |
//! | floor: asm switch only | two bare switches, no Rust layer | — | — |
//!
//! Run: `cargo bench --bench switch` (figures in docs/benchmarks.md), and
//! `cargo bench --bench switch --features fp-control -- round_trip` for the
//! `fp-control` build's round trips beside the same peers;
//! `scripts/bench.sh` runs both and prints the ratio table.

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use greenlet::{Greenlet, Value};

mod support;
use support::echo_greenlet;

/// The round-trip group's name: the `fp-control` build is measured in a run
/// of its own, beside its own peers, under a name of its own.
const ROUND_TRIP: &str = if cfg!(feature = "fp-control") {
    "round_trip_fp_control"
} else {
    "round_trip"
};

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group(ROUND_TRIP);

    let g = echo_greenlet();
    group.bench_function(BenchmarkId::new("greenlet", "unit"), |b| {
        b.iter(|| g.switch(()))
    });
    group.bench_function(BenchmarkId::new("greenlet", "u64"), |b| {
        b.iter(|| g.switch(black_box(7u64)).downcast::<u64>().unwrap())
    });
    group.bench_function(BenchmarkId::new("greenlet", "in_helper"), |b| {
        b.iter(|| switch_in_helper(&g))
    });
    group.bench_function(BenchmarkId::new("greenlet", "in_helper_dropping"), |b| {
        b.iter(|| switch_in_helper_dropping(&g))
    });
    drop(g);

    let mut co = corosensei::Coroutine::new(|y: &corosensei::Yielder<(), ()>, ()| loop {
        y.suspend(());
    });
    group.bench_function(BenchmarkId::new("corosensei", "unit"), |b| {
        b.iter(|| co.resume(()))
    });
    let mut co64 =
        corosensei::Coroutine::new(|y: &corosensei::Yielder<u64, u64>, mut v: u64| loop {
            v = y.suspend(v);
        });
    group.bench_function(BenchmarkId::new("corosensei", "u64"), |b| {
        b.iter(|| co64.resume(black_box(7u64)))
    });
    group.bench_function(BenchmarkId::new("corosensei", "in_helper"), |b| {
        b.iter(|| resume_in_helper(&mut co))
    });

    let stack = context::stack::ProtectedFixedSizeStack::default();
    extern "C" fn bounce(mut t: context::Transfer) -> ! {
        loop {
            // SAFETY: `t.context` is the benchmark's context, suspended in its resume.
            t = unsafe { t.context.resume(t.data) };
        }
    }
    // SAFETY: the stack outlives the context (both live to the end of this function).
    let mut t = Some(context::Transfer::new(
        unsafe { context::Context::new(&stack, bounce) },
        0,
    ));
    group.bench_function(BenchmarkId::new("context", "unit"), |b| {
        b.iter(|| {
            let cur = t.take().unwrap();
            // SAFETY: `cur.context` is the bouncing context, suspended in its resume.
            t = Some(unsafe { cur.context.resume(0) });
        })
    });
    group.bench_function(BenchmarkId::new("context", "u64"), |b| {
        b.iter(|| {
            let cur = t.take().unwrap();
            // SAFETY: as above.
            let next = unsafe { cur.context.resume(black_box(7)) };
            let data = next.data;
            t = Some(next);
            data
        })
    });
    raw_switch_floor(&mut group);
    group.finish();
}

/// The resuming side's switch one real call deeper than the loop: if the
/// switch left the CPU's return-address predictor out of step, this helper's
/// own `ret` would be mispredicted on every round trip (issue 22 measured
/// 13.5 ns here against 6.1 ns flat with the old one-entry switch).
#[inline(never)]
fn switch_in_helper(g: &Greenlet) -> Value {
    g.switch(())
}

/// The same, with the value handled inside the helper as corosensei's
/// handles its result: nothing comes back. The helper above returns a
/// 24-byte `Value` through memory, which the benchmark loop then copies (to
/// hand it to `black_box`) with a 16-byte load over the helper's two 8-byte
/// stores, a load the store buffer cannot forward; this one measures the
/// predictor alone.
#[inline(never)]
fn switch_in_helper_dropping(g: &Greenlet) {
    drop(g.switch(()));
}

/// corosensei's resume in the same shape.
#[inline(never)]
fn resume_in_helper(co: &mut corosensei::Coroutine<(), (), ()>) {
    if let corosensei::CoroutineResult::Return(()) = co.resume(()) {
        unreachable!("the coroutine loops for ever")
    }
}

/// The floor under every greenlet round trip: the assembly switch alone, two
/// switches per iteration with no Rust bookkeeping around them.
fn raw_switch_floor(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.bench_function(BenchmarkId::new("asm_switch_only", "unit"), |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            black_box(greenlet::bench_support::bare_switch_round_trips(iters));
            start.elapsed()
        })
    });
}

fn create_run_die(c: &mut Criterion) {
    let mut group = c.benchmark_group("create_run_die");

    Greenlet::new(|_| ()).switch(()); // one stack in the pool
    group.bench_function(BenchmarkId::new("greenlet", "pooled"), |b| {
        b.iter(|| Greenlet::new(|v: Value| v).switch(black_box(1u64)))
    });
    group.bench_function(BenchmarkId::new("greenlet", "fresh"), |b| {
        b.iter(|| {
            greenlet::stack::trim_pool(); // unmap: the next greenlet maps a new stack
            Greenlet::new(|v: Value| v).switch(black_box(1u64))
        })
    });

    use corosensei::stack::DefaultStack;
    let mut spare = Some(DefaultStack::new(1 << 20).unwrap());
    group.bench_function(BenchmarkId::new("corosensei", "reused"), |b| {
        b.iter(|| {
            let mut co = corosensei::Coroutine::with_stack(
                spare.take().unwrap(),
                |_: &corosensei::Yielder<u64, ()>, v: u64| v,
            );
            let r = co.resume(black_box(1u64));
            spare = Some(co.into_stack());
            r
        })
    });
    group.bench_function(BenchmarkId::new("corosensei", "fresh"), |b| {
        b.iter(|| {
            let stack = DefaultStack::new(1 << 20).unwrap();
            let mut co = corosensei::Coroutine::with_stack(
                stack,
                |_: &corosensei::Yielder<u64, ()>, v: u64| v,
            );
            co.resume(black_box(1u64))
        })
    });
    group.finish();
}

fn throw_and_kill(c: &mut Criterion) {
    let mut group = c.benchmark_group("throw_and_kill");

    #[derive(Debug)]
    struct Stop;
    let main = Greenlet::current();
    let catcher = Greenlet::new(move |_| loop {
        match catch_unwind(AssertUnwindSafe(|| main.switch(()))) {
            // Dropping the catcher throws GreenletExit: die quietly then.
            Err(p) if p.is::<greenlet::GreenletExit>() => return,
            caught => main.switch(caught.is_err()),
        };
    });
    catcher.switch(());
    group.bench_function(BenchmarkId::new("greenlet", "throw_round_trip"), |b| {
        b.iter(|| {
            let caught = catcher.throw(Stop).downcast::<bool>().unwrap();
            catcher.switch(()); // back into its catch_unwind
            caught
        })
    });
    drop(catcher);

    group.bench_function(BenchmarkId::new("greenlet", "kill_on_drop"), |b| {
        b.iter(|| {
            let main = Greenlet::current();
            let g = Greenlet::new(move |_| main.switch(()));
            g.switch(());
            drop(g); // GreenletExit unwinds it
        })
    });
    use corosensei::stack::DefaultStack;
    let mut spare = Some(DefaultStack::new(1 << 20).unwrap());
    group.bench_function(BenchmarkId::new("corosensei", "kill_on_drop"), |b| {
        b.iter(|| {
            let mut co = corosensei::Coroutine::with_stack(
                spare.take().unwrap(),
                |y: &corosensei::Yielder<(), ()>, ()| {
                    y.suspend(());
                },
            );
            co.resume(());
            co.force_unwind(); // what dropping a suspended coroutine does
            spare = Some(co.into_stack());
        })
    });
    group.finish();
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    // main -> a -> b -> c -> main: each greenlet switches to the next one in
    // the ring, and the last back to main, so one lap is four switches.
    let main = Greenlet::current();
    let slots: std::rc::Rc<std::cell::RefCell<Vec<greenlet::WeakGreenlet>>> = Default::default();
    let make = |i: usize| {
        let slots = slots.clone();
        let main = main.clone();
        Greenlet::new(move |_| loop {
            let next = if i == 2 {
                main.clone()
            } else {
                slots.borrow()[i + 1].upgrade().unwrap()
            };
            next.switch(());
        })
    };
    let ring: Vec<Greenlet> = (0..3).map(make).collect();
    slots
        .borrow_mut()
        .extend(ring.iter().map(Greenlet::downgrade));
    group.bench_function("greenlet_3_lap", |b| b.iter(|| ring[0].switch(())));
    group.finish();
}

criterion_group!(benches, round_trips, create_run_die, throw_and_kill, ring);
criterion_main!(benches);
