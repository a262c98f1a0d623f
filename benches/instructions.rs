//! Runs one operation of `benches/switch.rs` a given number of times, for an
//! instruction counter: `scripts/instructions.sh` runs it under
//! `valgrind --tool=callgrind` at two counts and prints the difference per
//! operation, which is repeatable where times on a shared machine are not.
//!
//! ```text
//! instructions <operation> <count>
//! ```

use std::hint::black_box;

use greenlet::{Greenlet, Value};

mod support;
use support::echo_greenlet;

#[cfg(target_arch = "x86_64")]
fn peers(op: &str, n: u64) -> bool {
    match op {
        "corosensei_unit" => {
            let mut co = corosensei::Coroutine::new(|y: &corosensei::Yielder<(), ()>, ()| loop {
                y.suspend(());
            });
            for _ in 0..n {
                black_box(co.resume(()));
            }
        }
        "corosensei_u64" => {
            let mut co =
                corosensei::Coroutine::new(|y: &corosensei::Yielder<u64, u64>, mut v: u64| loop {
                    v = y.suspend(v);
                });
            for _ in 0..n {
                black_box(co.resume(black_box(7u64)));
            }
        }
        "corosensei_in_helper" => {
            let mut co = corosensei::Coroutine::new(|y: &corosensei::Yielder<(), ()>, ()| loop {
                y.suspend(());
            });
            for _ in 0..n {
                resume_in_helper(&mut co);
            }
        }
        "corosensei_create_reused" => {
            use corosensei::stack::DefaultStack;
            let mut spare = Some(DefaultStack::new(1 << 20).unwrap());
            for _ in 0..n {
                let mut co = corosensei::Coroutine::with_stack(
                    spare.take().unwrap(),
                    |_: &corosensei::Yielder<u64, ()>, v: u64| v,
                );
                black_box(co.resume(black_box(1u64)));
                spare = Some(co.into_stack());
            }
        }
        "corosensei_force_unwind" => {
            use corosensei::stack::DefaultStack;
            let mut spare = Some(DefaultStack::new(1 << 20).unwrap());
            for _ in 0..n {
                let mut co = corosensei::Coroutine::with_stack(
                    spare.take().unwrap(),
                    |y: &corosensei::Yielder<(), ()>, ()| {
                        y.suspend(());
                    },
                );
                co.resume(());
                co.force_unwind();
                spare = Some(co.into_stack());
            }
        }
        _ => return false,
    }
    true
}

/// corosensei's resume one real call deeper, as `unit_in_helper` does ours.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn resume_in_helper(co: &mut corosensei::Coroutine<(), (), ()>) {
    black_box(co.resume(()));
}

/// The switch one real call deeper than the loop (`benches/switch.rs`).
#[inline(never)]
fn switch_in_helper(g: &Greenlet) -> Value {
    g.switch(())
}

#[cfg(not(target_arch = "x86_64"))]
fn peers(_op: &str, _n: u64) -> bool {
    false
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(op), Some(n)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: instructions <operation> <count>");
        std::process::exit(2);
    };
    let n: u64 = n.parse().expect("count");
    match op.as_str() {
        "unit_round_trip" => {
            let g = echo_greenlet();
            for _ in 0..n {
                black_box(g.switch(()));
            }
        }
        "u64_round_trip" => {
            let g = echo_greenlet();
            for _ in 0..n {
                black_box(g.switch(black_box(7u64)).downcast::<u64>().unwrap());
            }
        }
        "unit_in_helper" => {
            let g = echo_greenlet();
            for _ in 0..n {
                black_box(switch_in_helper(&g));
            }
        }
        "create_run_die" => {
            Greenlet::new(|_| ()).switch(()); // one stack in the pool
            for _ in 0..n {
                black_box(Greenlet::new(|v: Value| v).switch(black_box(1u64)));
            }
        }
        "kill_on_drop" => {
            for _ in 0..n {
                let main = Greenlet::current();
                let g = Greenlet::new(move |_| main.switch(()));
                g.switch(());
                drop(g);
            }
        }
        "bare_switch_round_trip" => {
            black_box(greenlet::bench_support::bare_switch_round_trips(n));
        }
        other => {
            if !peers(other, n) {
                eprintln!("unknown operation {other}");
                std::process::exit(2);
            }
        }
    }
}
