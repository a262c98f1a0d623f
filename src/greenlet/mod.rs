//! The greenlet core: greenlet objects and their handles, the parent tree,
//! switching, starting and death, kill on drop, tracing, introspection, and
//! the per-thread state they share.
//!
//! | file | holds |
//! | --- | --- |
//! | `object.rs` | the greenlet object, its states and counts, release at the last handle |
//! | `handle.rs` | `Greenlet`, `WeakGreenlet` |
//! | `builder.rs` | `Builder`: the stack, the closure at its top, the initial frame |
//! | `switch.rs` | the switch: fast path, slow path, what the resumed side does |
//! | `entry.rs` | the bottom frame of every greenlet stack, and death |
//! | `kill.rs` | kill on drop (SPEC S10) |
//! | `thread.rs` | per-thread state: the running greenlet, main, slow-path flags |
//! | `trace.rs` | the tracer (SPEC S11) |
//! | `introspect.rs` | backtraces of suspended greenlets, stack usage |
//! | `locals.rs` | the per-greenlet table of greenlet-local values |
//! | `spare.rs` | recycled greenlet objects |
//! | `registry.rs` | the live greenlets of each thread and the exported debug table (SPEC §10) |
//! | `value.rs`, `error.rs` | `Value`; `Error` and `GreenletExit` |
//! | `report.rs` | one-line reports on stderr of what cannot be returned |

pub(crate) mod builder;
mod entry;
pub(crate) mod error;
pub(crate) mod handle;
mod introspect;
mod kill;
pub(crate) mod locals;
mod object;
mod registry;
mod report;
mod spare;
mod switch;
pub(crate) mod thread;
pub(crate) mod trace;
pub(crate) mod value;
