//! The greenlet core: greenlet objects and handles, the parent tree,
//! switching, death, kill on drop, and the per-thread state they share.

pub(crate) mod error;
pub(crate) mod handle;
pub(crate) mod introspect;
pub(crate) mod spare;
pub(crate) mod switching;
pub(crate) mod thread;
pub(crate) mod value;
