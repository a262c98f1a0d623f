//! Extras built on the greenlet core's public API: typed generators and
//! greenlet-local storage.

pub(crate) mod generator;
pub(crate) mod local;
