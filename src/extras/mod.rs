//! Extras built on the greenlet core's public API: typed generators,
//! greenlet-local storage and the async bridge.

pub mod bridge;
pub(crate) mod generator;
pub(crate) mod local;
