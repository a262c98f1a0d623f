//! The gevent-style hub of `examples/hub.rs` (greenlets switching to a mio
//! poller, no futures): the same checked loopback load as the bridge server,
//! and the hub's own blocking refused.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use greenlet::Greenlet;

#[path = "../examples/hub.rs"]
#[allow(dead_code)]
mod hub;

/// 1,000 connections × 100 messages; `GREENLET_LOAD=CONNS,MSGS` changes it
/// (test.sh runs the full size natively and a smaller one under qemu), loudly.
fn load_size() -> (usize, usize) {
    match std::env::var("GREENLET_LOAD") {
        Ok(v) => {
            let (c, m) = v.split_once(',').expect("GREENLET_LOAD=CONNS,MSGS");
            let size = (c.parse().unwrap(), m.parse().unwrap());
            eprintln!(
                "!!! GREENLET_LOAD: the loopback load runs {} connections x {} messages, not 1,000 x 100",
                size.0, size.1
            );
            size
        }
        Err(_) => (1000, 100),
    }
}

#[test]
fn the_hub_serves_a_checked_loopback_load() {
    let (conns, msgs) = load_size();
    let report = hub::serve_load(conns, msgs).unwrap();
    assert_eq!(report.connections, conns);
    assert_eq!(report.bytes, hub::loopback::total_bytes(conns, msgs));
    eprintln!(
        "hub echo: {conns} connections x {msgs} messages, {} bytes in {:.2?}",
        report.bytes, report.elapsed
    );
}

#[test]
fn blocking_on_the_hub_itself_is_an_error() {
    let seen: Rc<RefCell<Option<io::Error>>> = Rc::default();
    let sink = seen.clone();
    hub::run(move || {
        hub::run_callback(move || {
            let listener = hub::HubListener::bind(([127, 0, 0, 1], 0).into()).unwrap();
            // Nobody connects: a greenlet would wait here; the hub may not.
            *sink.borrow_mut() = listener.accept().err();
        })
    })
    .unwrap();
    let err = seen
        .take()
        .expect("the callback ran and its accept was refused");
    assert!(
        err.get_ref().is_some_and(|e| e.is::<hub::HubBlocked>()),
        "{err}"
    );
}

#[test]
fn greenlets_under_the_hub_wait_for_each_other_and_return_to_it() {
    // Two greenlets ping-pong over a loopback connection with blocking-style
    // calls; each finishes by returning to the hub, its parent.
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = log.clone();
    hub::run(move || {
        let listener = hub::HubListener::bind(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client_log = sink.clone();
        hub::spawn(move || {
            let mut conn = hub::connect(addr).unwrap();
            for i in 0..3u8 {
                conn.write_all(&[i]).unwrap();
                let mut b = [0u8; 1];
                assert_eq!(conn.read(&mut b).unwrap(), 1);
                client_log.borrow_mut().push(format!("client got {}", b[0]));
            }
            assert!(Greenlet::current().parent().is_some());
        })
        .unwrap();
        let mut conn = listener.accept().unwrap();
        let mut b = [0u8; 1];
        while conn.read(&mut b).unwrap() == 1 {
            sink.borrow_mut().push(format!("server got {}", b[0]));
            conn.write_all(&[b[0] + 10]).unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        *log.borrow(),
        [
            "server got 0",
            "client got 10",
            "server got 1",
            "client got 11",
            "server got 2",
            "client got 12"
        ]
    );
}

#[test]
fn a_panic_in_a_greenlet_under_the_hub_comes_out_of_run() {
    let payload = std::panic::catch_unwind(|| {
        hub::run(|| {
            hub::spawn(|| panic!("connection code failed")).unwrap();
        })
    })
    .unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"connection code failed")
    );
}
