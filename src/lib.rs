//! Greenlets for Rust: small pseudo-threads, each with its own stack, that run
//! one at a time on one OS thread and hand control to each other only by an
//! explicit [`switch`](Greenlet::switch) — Python's `greenlet`, the Rust way.
//!
//! ```
//! use greenlet::Greenlet;
//!
//! let g = Greenlet::new(|first| {
//!     let a: i32 = first.downcast().unwrap();
//!     // Pause, handing a + 1 back to the parent (main), until switched to again.
//!     let b: i32 = Greenlet::main().switch(a + 1).downcast().unwrap();
//!     a * b // returning kills the greenlet and hands this to its parent
//! });
//! assert_eq!(g.switch(1).downcast::<i32>().unwrap(), 2);
//! assert_eq!(g.switch(10).downcast::<i32>().unwrap(), 10);
//! assert!(g.is_dead());
//! ```
//!
//! # Concepts
//!
//! * **Switching** ([`Greenlet::switch`]): suspends the current greenlet and
//!   resumes another with a [`Value`]. The first switch into a greenlet calls its
//!   `run` closure with that value, on its own stack.
//! * **The parent tree** ([`Greenlet::parent`], [`Greenlet::set_parent`]): every
//!   greenlet but a main one has a parent, by default the greenlet that was
//!   current when it was made. Parents form a tree rooted at the thread's main
//!   greenlet.
//! * **Death**: when `run` returns, the greenlet is dead and control goes to its
//!   parent (not to whoever switched to it last), whose pending switch returns
//!   the result. Switching to a dead greenlet goes to its first live ancestor.
//! * **Panics are raised in the parent**: a panic escaping `run` kills the
//!   greenlet and continues, with the same payload, from the parent's pending
//!   switch. Unwinding never crosses a stack switch.
//! * **The main greenlet** ([`Greenlet::main`]): one per OS thread, made on first
//!   use, always alive; it is the current greenlet of code outside any greenlet.
//! * **Throw** ([`Greenlet::throw`]): switches to a greenlet and raises a panic
//!   payload there; [`GreenletExit`] asks it to die quietly.
//! * **Kill on drop**: when the last handle to a suspended greenlet drops,
//!   `GreenletExit` is thrown into it so that every destructor on its stack runs.
//! * **Tracing** ([`settrace`]): a per-thread callback for every switch and throw.
//!
//! Handles are `!Send` and `!Sync`, so a greenlet can never be switched to from
//! another thread: that is a compile error, not a run-time one.
//!
//! ```compile_fail
//! let g = greenlet::Greenlet::new(|_| ());
//! std::thread::spawn(move || g.switch(())); // error: `Greenlet` cannot be sent between threads
//! ```
//!
//! ```compile_fail
//! let v = greenlet::Value::new(1u8);
//! std::thread::spawn(move || drop(v)); // error: a `Value` may hold an `Rc`: not `Send`
//! ```
//!
//! # How it is built
//!
//! The stack switch is hand-written assembly, one file per CPU family
//! (`asm/x86_64.S`, `asm/x86.S` for i686, `asm/aarch64.S`, `asm/arm.S` for armv7,
//! `asm/riscv64.S`, `asm/powerpc64.S` for powerpc64le, `asm/s390x.S`, `asm/loongarch64.S`), reached only through the private `arch`
//! module. Every greenlet runs on an mmap'ed stack with a hardware guard below
//! it ([`stack`]). The layers, bottom up, are folders of `src/`: `arch` (the
//! door to the assembly), `stack` (memory, guards, the overflow handler),
//! `greenlet` (the core: objects, switching, death) and `extras` (generators,
//! greenlet-local storage, the async [`bridge`]), with the public API
//! re-exported here. See
//! `docs/design.md` for the layers, `docs/benchmarks.md` for what a switch
//! costs and `docs/semantics.md` for the mapping from Python's greenlet.
//!
//! # Cargo features
//!
//! * `fp-control`: each greenlet keeps its own floating-point control state
//!   (rounding mode, exception masks, flush-to-zero), for programs whose C code
//!   changes it inside a greenlet. Off by default: Rust assumes the default
//!   floating-point environment, so the state belongs to the thread and the
//!   switch does not touch it (SPEC §5).
//! * `asan`: AddressSanitizer fiber annotations around every switch, for
//!   programs built with `-Zsanitizer=address` (nightly).

#![deny(missing_docs)]
// gdb support (SPEC §10): `info greenlets`, `greenlet ID CMD`, pretty-printers;
// embedded in binaries built with debug info (docs/backtraces.md).
#![debugger_visualizer(gdb_script_file = "../gdb/greenlet_gdb.py")]
#![deny(unsafe_op_in_unsafe_fn)]

mod arch;
mod extras;
mod greenlet;
pub mod stack;

pub use crate::extras::bridge;
pub use crate::extras::generator::{Generator, GeneratorState, Yielder};
pub use crate::extras::local::GreenletLocal;
pub use crate::greenlet::builder::Builder;
pub use crate::greenlet::error::{Error, GreenletExit};
pub use crate::greenlet::handle::{Greenlet, WeakGreenlet};
pub use crate::greenlet::trace::{gettrace, settrace, Event, Tracer};
pub use crate::greenlet::value::Value;
pub use crate::stack::StackKind;

/// For the crate's own benchmarks: the floor under every switch, measured
/// without any greenlet machinery. Not part of the API.
#[doc(hidden)]
pub mod bench_support {
    pub use crate::arch::bare::round_trips as bare_switch_round_trips;
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
