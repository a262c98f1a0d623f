//! What the benchmark targets share.

use greenlet::{Greenlet, Value};

/// A greenlet that bounces every value straight back to the greenlet that
/// made it, for ever; started and suspended in its loop.
pub fn echo_greenlet() -> Greenlet {
    let main = Greenlet::current();
    let g = Greenlet::new(move |first: Value| {
        let mut v = first;
        loop {
            v = main.switch(v);
        }
    });
    g.switch(());
    g
}
