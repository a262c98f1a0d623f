//! A tracer that records what it sees as readable strings ("switch main->g"),
//! with greenlets named by the test, so that a test can compare the whole
//! sequence of events with what Python's greenlet reports for the same
//! scenario. Notes written by the test go into the same log, so the order of
//! events relative to the test's own steps is checked too.

#![allow(dead_code)] // each test file uses part of this helper

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use greenlet::{settrace, Event, Greenlet, Tracer};

/// A stable key for a greenlet's identity (handles hash by identity) that
/// holds no handle, so naming a greenlet never keeps it alive.
fn key(g: &Greenlet) -> u64 {
    let mut h = DefaultHasher::new();
    g.hash(&mut h);
    h.finish()
}

#[derive(Default)]
pub struct Recorder {
    names: RefCell<Vec<(u64, &'static str)>>,
    log: RefCell<Vec<String>>,
}

impl Recorder {
    pub fn new() -> Rc<Recorder> {
        let r = Rc::new(Recorder::default());
        r.name(&Greenlet::main(), "main");
        r
    }

    /// Names `g` in the log.
    pub fn name(&self, g: &Greenlet, name: &'static str) {
        self.names.borrow_mut().push((key(g), name));
    }

    pub fn name_of(&self, g: &Greenlet) -> &'static str {
        let k = key(g);
        self.names
            .borrow()
            .iter()
            .rev()
            .find(|(n, _)| *n == k)
            .map_or("?", |(_, name)| name)
    }

    /// Adds a line of the test's own to the log.
    pub fn note(&self, line: impl Into<String>) {
        self.log.borrow_mut().push(line.into());
    }

    /// The log so far, emptied.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.borrow_mut())
    }

    /// A tracer that records into this log.
    pub fn tracer(self: &Rc<Self>) -> Tracer {
        let me = self.clone();
        Rc::new(move |event: Event, origin: &Greenlet, target: &Greenlet| {
            let kind = match event {
                Event::Switch => "switch",
                Event::Throw => "throw",
            };
            let line = format!("{kind} {}->{}", me.name_of(origin), me.name_of(target));
            me.log.borrow_mut().push(line);
        })
    }

    /// Installs the tracer until the guard drops (which restores the previous one).
    pub fn install(self: &Rc<Self>) -> Installed {
        Installed(Some(settrace(Some(self.tracer()))))
    }
}

/// Restores the previous tracer when dropped.
pub struct Installed(Option<Option<Tracer>>);

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(previous) = self.0.take() {
            settrace(previous);
        }
    }
}
