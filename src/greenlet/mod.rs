//! The greenlet core: greenlet objects and their handles, the parent tree,
//! switching, starting and death, kill on drop, tracing, introspection, and
//! the per-thread state they share.
//!
//! The files are layered: each names only files in rows above it in this
//! table (and `crate::arch`, `crate::stack`), never one below. A newcomer
//! reads the fast path top to bottom in `switch.rs`.
//!
//! | layer | file | holds |
//! | --- | --- | --- |
//! | foundations | `value.rs` | `Value`, and its three words for a switch |
//! | | `error.rs` | `Error` and `GreenletExit` |
//! | | `report.rs` | one-line reports on stderr; dropping what may panic |
//! | | `locals.rs` | the per-greenlet table of greenlet-local values |
//! | the object | `object.rs` | the greenlet object, its states and counts, the `Greenlet` handle type |
//! | | `registry.rs` | every thread's greenlet objects and the exported debug table (SPEC §10) |
//! | | `spare.rs` | recycled greenlet objects |
//! | per thread | `thread.rs` | the running greenlet, main, slow-path flags, the running greenlet's locals |
//! | | `trace.rs` | the tracer (SPEC S11) |
//! | the switch | `introspect.rs` | backtraces of suspended greenlets, stack usage |
//! | | `switch.rs` | the switch: fast path, slow path, what the resumed side does |
//! | birth, death, kill | `entry.rs` | the bottom frame of every greenlet stack, and death |
//! | | `kill.rs` | release at the last handle, kill on drop (SPEC S10) |
//! | handles | `builder.rs` | `Builder`: the stack, the closure at its top, the initial frame |
//! | | `handle.rs` | the API of `Greenlet`; `WeakGreenlet` |

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
