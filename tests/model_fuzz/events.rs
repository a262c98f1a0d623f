//! What the fuzzer compares: the trace of observable events, identical in
//! form for the real crate and the model. Greenlets are named by creation
//! order (main is 0), not by slot, since slots are reused.

use std::fmt;

/// Greenlet identity: 0 is main, then 1, 2, ... in creation order.
pub type Id = u32;

/// A value that came out of a switch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Val {
    Int(i64),
    /// `GreenletExit`, as handed back by a killed greenlet's death.
    Exit,
    /// An integer sent together with a handle (to this greenlet, or `None`
    /// when the slot it was taken from was empty), which the receiver drops
    /// on arrival (`SwitchWith`, `ReturnWith`).
    With(i64, Option<Id>),
    /// Anything else (never expected): its type name.
    Other(String),
}

/// The state `Observe` reports for one greenlet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Seen {
    pub id: Id,
    pub started: bool,
    pub active: bool,
    pub dead: bool,
    pub current: bool,
    pub main: bool,
    pub parent: Option<Id>,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Ev {
    /// `run` was called with this argument.
    Started { g: Id, arg: Val },
    /// A pending `switch`/`throw` of `g` returned this value.
    Received { g: Id, value: Val },
    /// A `Catch` block of `g` (or main's script) caught `Boom(boom)`.
    Caught { g: Id, boom: i64 },
    /// Main's script caught a `GreenletExit` (thrown into main, or into a
    /// greenlet whose death raised it nowhere else).
    CaughtExit { g: Id },
    /// `Upgrade` in `g`: what the weak handle gave.
    Upgraded { g: Id, got: Option<Id> },
    /// `run` of `g` is returning this value.
    Finished { g: Id, value: i64 },
    /// The frame of `run` of `g` was left (returned, panicked or unwound by a kill).
    BodyExit { g: Id },
    /// The tracer's call: (switch or throw, origin, target).
    Trace { throw: bool, origin: Id, target: Id },
    /// `g` created greenlet `new`.
    Created { g: Id, new: Id },
    /// `set_parent` from `g` returned this ("ok" or the error's name).
    SetParent { g: Id, result: &'static str },
    /// What `Observe(slot)` saw; `None` for an empty slot.
    Observe { slot: usize, seen: Option<Seen> },
    /// `Backtrace` in `g`: whether `backtrace()` of greenlet `of` gave one.
    Backtrace { g: Id, of: Id, some: bool },
    /// `g` skipped a step: its slot was empty, or the create budget was spent.
    Skipped { g: Id },
    /// Greenlet bodies (closures or running frames) still alive at the end:
    /// suspended greenlets kept alive only by each other, leaked by design.
    Live { count: usize },
}

impl fmt::Debug for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ev::Started { g, arg } => write!(f, "g{g} started with {arg:?}"),
            Ev::Received { g, value } => write!(f, "g{g} received {value:?}"),
            Ev::Caught { g, boom } => write!(f, "g{g} caught Boom({boom})"),
            Ev::CaughtExit { g } => write!(f, "g{g} caught GreenletExit"),
            Ev::Upgraded { g, got } => write!(f, "g{g} upgraded a weak handle: {got:?}"),
            Ev::Finished { g, value } => write!(f, "g{g} returns {value}"),
            Ev::BodyExit { g } => write!(f, "g{g} left run"),
            Ev::Trace {
                throw,
                origin,
                target,
            } => write!(
                f,
                "trace {} g{origin} -> g{target}",
                if *throw { "throw" } else { "switch" }
            ),
            Ev::Created { g, new } => write!(f, "g{g} created g{new}"),
            Ev::SetParent { g, result } => write!(f, "g{g} set_parent: {result}"),
            Ev::Observe { slot, seen } => write!(f, "slot {slot}: {seen:?}"),
            Ev::Backtrace { g, of, some } => write!(f, "g{g} took a backtrace of g{of}: {some}"),
            Ev::Skipped { g } => write!(f, "g{g} skipped a step"),
            Ev::Live { count } => write!(f, "{count} bodies alive at the end"),
        }
    }
}

/// The payload of every panic in a program.
#[derive(Debug)]
pub struct Boom(pub i64);
