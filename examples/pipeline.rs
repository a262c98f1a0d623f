//! A producer/consumer pipeline of greenlets: a reader produces lines, a
//! filter keeps the interesting ones, a counter consumes them. Each stage is a
//! greenlet that *pulls* from the previous one by switching to it, so no
//! buffers or channels are needed: control flows with the data.
//!
//! Run: `cargo run --example pipeline`

use greenlet::{Greenlet, Value};

/// End-of-stream marker passed down the pipeline.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Eof;

/// A stage that yields each item to whoever resumed it (its consumer).
fn emit<T: 'static>(item: T) {
    let me = Greenlet::current();
    let consumer = me.parent().expect("a stage always has a consumer");
    consumer.switch(item);
}

/// Pulls one item from `source`, making the current greenlet its consumer.
fn pull(source: &Greenlet) -> Value {
    source
        .set_parent(&Greenlet::current())
        .expect("not an ancestor");
    source.switch(())
}

fn main() {
    let text =
        "INFO start\nWARN disk at 91%\nINFO tick\nERROR lost connection\nINFO tick\nWARN retrying";

    let reader = Greenlet::new(move |_| {
        for line in text.lines() {
            emit(line);
        }
        Eof // dying hands Eof to the consumer
    });

    let filter = Greenlet::new(move |_| loop {
        let item = pull(&reader);
        match item.downcast::<&str>() {
            Ok(line) if !line.starts_with("INFO") => emit(line),
            Ok(_) => {}
            Err(_) => return Eof,
        }
    });

    let mut kept = Vec::new();
    loop {
        let item = pull(&filter);
        match item.downcast::<&str>() {
            Ok(line) => {
                println!("consumer got: {line}");
                kept.push(line);
            }
            Err(end) => {
                assert!(end.is::<Eof>());
                break;
            }
        }
    }
    println!(
        "{} interesting lines of {}",
        kept.len(),
        text.lines().count()
    );
    assert_eq!(kept.len(), 3);
}
