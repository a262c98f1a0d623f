//! A small cooperative scheduler: thousands of greenlets run round-robin.
//! Each task calls `yield_now()` to let the others run; the scheduler is the
//! parent of every task, so a task that finishes simply returns to it.
//!
//! Run: `cargo run --example scheduler [tasks]`

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use greenlet::Greenlet;

/// Gives control back to the scheduler (every task's parent).
fn yield_now() {
    let me = Greenlet::current();
    me.parent()
        .expect("tasks run under the scheduler")
        .switch(());
}

fn main() {
    let tasks: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000);
    let total_steps = Rc::new(RefCell::new(0u64));

    let scheduler = Greenlet::new({
        let total_steps = total_steps.clone();
        move |_| {
            let mut ready: VecDeque<Greenlet> = VecDeque::new();
            for id in 0..tasks {
                let steps = total_steps.clone();
                // Tasks made here have the scheduler as their parent.
                ready.push_back(
                    Greenlet::builder()
                        .stack_size(32 << 10)
                        .spawn(move |_| {
                            // Task `id` runs for a number of rounds that depends on its id.
                            for _ in 0..(id % 7 + 1) {
                                *steps.borrow_mut() += 1;
                                yield_now();
                            }
                            id
                        })
                        .expect("a task stack"),
                );
            }
            let mut rounds = 0u64;
            let mut finished = 0usize;
            while let Some(task) = ready.pop_front() {
                task.switch(());
                rounds += 1;
                if task.is_dead() {
                    finished += 1;
                } else {
                    ready.push_back(task);
                }
            }
            (finished, rounds)
        }
    });

    let (finished, rounds) = scheduler
        .switch(())
        .downcast::<(usize, u64)>()
        .expect("scheduler result");
    let steps = *total_steps.borrow();
    println!("{finished} tasks finished after {rounds} switches into tasks ({steps} task steps)");
    assert_eq!(finished, tasks);
    let expected: u64 = (0..tasks).map(|id| (id % 7 + 1) as u64).sum();
    assert_eq!(steps, expected);
    assert_eq!(
        rounds,
        expected + tasks as u64,
        "one extra resume per task to let it return"
    );
}
