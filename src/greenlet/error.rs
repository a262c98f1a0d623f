//! Error types: [`Error`] for refused operations and [`GreenletExit`], the
//! "please die" signal.

use std::fmt;

/// Why an operation on a greenlet was refused.
///
/// ```
/// use greenlet::{Error, Greenlet};
/// let g = Greenlet::new(|_| ());
/// assert_eq!(g.set_parent(&g), Err(Error::CyclicParent));
/// assert_eq!(Greenlet::main().set_parent(&g), Err(Error::ParentOfMain));
/// // A `std::error::Error`, so `?` turns it into a `Box<dyn Error>`.
/// let boxed: Box<dyn std::error::Error> = Error::CyclicParent.into();
/// assert!(boxed.to_string().contains("cannot be its own ancestor"));
/// assert!(Error::NotInTask.to_string().contains("bridge::spawn"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// `set_parent` would make a greenlet its own ancestor.
    CyclicParent,
    /// `set_parent` was called on a main greenlet, which never has a parent.
    ParentOfMain,
    /// `bridge::try_wait` was called where no bridge task is being polled for
    /// the current greenlet, or from inside a future that a wait is polling
    /// (SPEC B4).
    NotInTask,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::CyclicParent => "cyclic parent chain: a greenlet cannot be its own ancestor",
            Error::ParentOfMain => "a main greenlet cannot have a parent",
            Error::NotInTask => "not inside a bridge task: waiting needs a task made with bridge::spawn being polled for the current greenlet (and is refused inside a future that a wait is polling)",
        })
    }
}

impl std::error::Error for Error {}

/// The "please die" signal, Python's `greenlet.GreenletExit`.
///
/// Thrown into a greenlet (by [`Greenlet::throw`](crate::Greenlet::throw) or
/// when its last handle drops), it unwinds the greenlet's stack like any panic.
/// If it escapes `run`, the greenlet dies quietly: the parent's pending call
/// returns `Value::new(GreenletExit)` instead of panicking (SPEC S6).
///
/// ```
/// use greenlet::{Greenlet, GreenletExit};
/// let g = Greenlet::new(|_| { Greenlet::main().switch(()); "unreachable" });
/// g.switch(());
/// let v = g.throw(GreenletExit);
/// assert!(v.is::<GreenletExit>() && g.is_dead());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GreenletExit;

impl fmt::Display for GreenletExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GreenletExit")
    }
}
