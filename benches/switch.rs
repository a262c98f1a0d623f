//! Switch-path benchmarks, side by side with peer crates in the same run.
//!
//! | benchmark | greenlet | corosensei | context (Boost fcontext) |
//! | --- | --- | --- | --- |
//! | round trip, unit value | switch there and back | resume + suspend | resume + resume |
//! | round trip, u64 | same, carrying a u64 each way | same | same (in the data word) |
//! | create + run + die, pooled/reused stack | `Greenlet::new` from the pool | `with_stack` + `into_stack` | — |
//! | create + run + die, fresh stack | pool trimmed each time | `DefaultStack::new` each time | — |
//! | throw round trip | `throw` caught inside, switch back | — | — |
//! | kill on drop | drop a suspended greenlet | drop a suspended coroutine (forced unwind) | — |
//! | 3-greenlet ring | a -> b -> c -> a | — | — |
//! | floor: asm switch only | two calls of `greenlet::arch::switch`, no Rust layer | — | — |
//! | floor: FP control reads | the two `stmxcsr` + `fnstcw` of a round trip | — | — |
//!
//! Run: `cargo bench --bench switch` (figures in docs/benchmarks.md).

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use greenlet::{Greenlet, Value};

/// A greenlet that bounces every value straight back to main, for ever.
fn echo_greenlet() -> Greenlet {
    let main = Greenlet::current();
    let g = Greenlet::new(move |first: Value| {
        let mut v = first;
        loop {
            v = main.switch(v);
        }
    });
    g.switch(()); // started and suspended in its loop
    g
}

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");

    let g = echo_greenlet();
    group.bench_function(BenchmarkId::new("greenlet", "unit"), |b| {
        b.iter(|| g.switch(()))
    });
    group.bench_function(BenchmarkId::new("greenlet", "u64"), |b| {
        b.iter(|| g.switch(black_box(7u64)).downcast::<u64>().unwrap())
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

/// The floor under every greenlet round trip: two calls of the assembly switch
/// alone (no Rust bookkeeping), and the part of that which is the two
/// `stmxcsr` + `fnstcw` reads SPEC §5 requires on x86_64.
fn raw_switch_floor(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use greenlet::arch;

    struct Pair {
        main_sp: *mut u8,
        co_sp: *mut u8,
    }
    unsafe extern "C" fn bounce(transfer: usize, arg: usize) -> ! {
        let pair = arg as *mut Pair;
        let mut word = transfer;
        loop {
            // SAFETY: `pair` outlives the benchmark; `main_sp` was stored by the
            // switch that resumed us and main has not been resumed since.
            word = unsafe { arch::switch(&mut (*pair).co_sp, (*pair).main_sp, word) };
        }
    }
    let stack = greenlet::stack::Stack::new(64 << 10).unwrap();
    let mut pair = Box::new(Pair {
        main_sp: std::ptr::null_mut(),
        co_sp: std::ptr::null_mut(),
    });
    let arg = &mut *pair as *mut Pair as usize;
    // SAFETY: the top of a fresh stack we own; nothing else uses it.
    pair.co_sp = unsafe { arch::init_stack(stack.top(), bounce, arg) };
    group.bench_function(BenchmarkId::new("asm_switch_only", "unit"), |b| {
        b.iter(|| {
            let pair = arg as *mut Pair;
            // SAFETY: `co_sp` is the bouncer's saved (or initial) frame, not
            // resumed since; it switches straight back to `main_sp`.
            unsafe { arch::switch(&mut (*pair).main_sp, (*pair).co_sp, black_box(0)) }
        })
    });
    // The bouncer stays suspended on `stack` for good; leak both rather than
    // unmap memory that a suspended frame lives on.
    std::mem::forget(stack);
    std::mem::forget(pair);

    group.bench_function(BenchmarkId::new("fp_control_reads", "2x"), |b| {
        b.iter(|| {
            let mut mxcsr = 0u32;
            let mut cw = 0u16;
            for _ in 0..2 {
                // SAFETY: stores the two control registers to our own locals.
                unsafe {
                    std::arch::asm!(
                        "stmxcsr [{m}]",
                        "fnstcw [{c}]",
                        m = in(reg) &mut mxcsr,
                        c = in(reg) &mut cw,
                        options(nostack),
                    )
                };
            }
            black_box((mxcsr, cw))
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
