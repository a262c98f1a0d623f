//! A gevent-style hub, without futures: one hub greenlet runs a real poller
//! (mio); connection greenlets make blocking-style socket calls and, when a
//! call would block, switch to the hub, which switches back once the socket
//! is ready (gevent's Waiter pattern). Every greenlet the hub starts has the
//! hub as its parent, so one that finishes simply returns to it. The hub's
//! own blocking is an error: it runs the poller, so nothing would wake it.
//!
//! The run serves an echo load on 127.0.0.1 (1,000 concurrent connections ×
//! 100 messages from a client thread, every byte checked), prints what it
//! served and exits.
//!
//! Run: `cargo run --release --example hub [connections] [messages]`

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::Greenlet;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

#[path = "support/loopback.rs"]
pub mod loopback;

/// Each connection's greenlet stack.
pub const STACK_SIZE: usize = 128 << 10;

/// The error a blocking call made on the hub's own greenlet returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubBlocked;

impl fmt::Display for HubBlocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a blocking call on the hub's own greenlet: the hub runs the poller, so nothing would wake it")
    }
}

impl std::error::Error for HubBlocked {}

/// The hub of this thread: the poller, who waits for which token, and what
/// is ready to run.
struct Hub {
    greenlet: Greenlet,
    poll: RefCell<Poll>,
    waiters: RefCell<HashMap<Token, Greenlet>>,
    ready: RefCell<VecDeque<Greenlet>>,
    callbacks: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    next_token: Cell<usize>,
}

thread_local! {
    static HUB: RefCell<Option<Rc<Hub>>> = const { RefCell::new(None) };
}

fn hub() -> Rc<Hub> {
    HUB.with(|h| h.borrow().clone())
        .expect("no hub runs on this thread: call hub::run")
}

/// Starts `f` in a new greenlet under the hub (gevent's `spawn`); it runs
/// once the hub gets control.
pub fn spawn(f: impl FnOnce() + 'static) -> io::Result<()> {
    let hub = hub();
    let g = Greenlet::builder()
        .parent(&hub.greenlet)
        .stack_size(STACK_SIZE)
        .spawn(move |_| f())?;
    hub.ready.borrow_mut().push_back(g);
    Ok(())
}

/// Runs `f` on the hub's own greenlet, between polls (gevent's loop
/// callbacks). It must not block.
pub fn run_callback(f: impl FnOnce() + 'static) {
    hub().callbacks.borrow_mut().push_back(Box::new(f));
}

/// The Waiter: parks the current greenlet until the hub sees an event for
/// `token`. Refused on the hub's own greenlet.
fn wait(token: Token) -> io::Result<()> {
    let hub = hub();
    if hub.greenlet.is_current() {
        return Err(io::Error::other(HubBlocked));
    }
    let previous = hub.waiters.borrow_mut().insert(token, Greenlet::current());
    assert!(previous.is_none(), "two greenlets wait for one socket");
    let target = hub.greenlet.clone();
    drop(hub);
    target.switch(());
    Ok(())
}

fn new_token() -> Token {
    let hub = hub();
    let t = hub.next_token.get();
    hub.next_token.set(t + 1);
    Token(t)
}

/// A listening socket with a blocking-style `accept`.
pub struct HubListener {
    listener: TcpListener,
    token: Token,
}

impl HubListener {
    /// Binds to `addr` and registers with the hub.
    pub fn bind(addr: std::net::SocketAddr) -> io::Result<HubListener> {
        let mut listener = TcpListener::bind(addr)?;
        let token = new_token();
        hub()
            .poll
            .borrow()
            .registry()
            .register(&mut listener, token, Interest::READABLE)?;
        Ok(HubListener { listener, token })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Waits (switching to the hub) for the next connection.
    pub fn accept(&self) -> io::Result<HubConn> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => return HubConn::new(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(self.token)?,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A connection with blocking-style calls for greenlets under the hub.
pub struct HubConn {
    stream: TcpStream,
    token: Token,
}

/// Connects to `addr`, waiting (switching to the hub) until connected.
pub fn connect(addr: std::net::SocketAddr) -> io::Result<HubConn> {
    let conn = HubConn::new(TcpStream::connect(addr)?)?;
    loop {
        // Writable means the connection attempt is over: see whether it worked.
        wait(conn.token)?;
        if let Some(e) = conn.stream.take_error()? {
            return Err(e);
        }
        match conn.stream.peer_addr() {
            Ok(_) => return Ok(conn),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
            Err(e) => return Err(e),
        }
    }
}

impl HubConn {
    fn new(mut stream: TcpStream) -> io::Result<HubConn> {
        stream.set_nodelay(true)?;
        let token = new_token();
        hub().poll.borrow().registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(HubConn { stream, token })
    }

    /// Reads what is there (at least one byte), or 0 at the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(self.token)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// Writes all of `buf`.
    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.stream.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(self.token)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for HubConn {
    fn drop(&mut self) {
        if let Some(hub) = HUB.with(|h| h.borrow().clone()) {
            let _ = hub.poll.borrow().registry().deregister(&mut self.stream);
        }
    }
}

/// The per-connection code: the same synchronous loop as the bridge server's.
pub fn serve(conn: &mut HubConn) -> io::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut served = 0;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(served);
        }
        conn.write_all(&buf[..n])?;
        served += n as u64;
    }
}

/// The hub greenlet's loop: run what is ready and the callbacks, then poll;
/// over when nothing is ready and nobody waits.
fn hub_loop(hub: &Hub) -> io::Result<()> {
    let mut events = Events::with_capacity(1024);
    loop {
        loop {
            let callback = hub.callbacks.borrow_mut().pop_front();
            let Some(callback) = callback else { break };
            callback();
        }
        loop {
            let next = hub.ready.borrow_mut().pop_front();
            let Some(g) = next else { break };
            // Returns when `g` waits (switches back here) or dies (its
            // parent is the hub); a panic in `g` continues here.
            g.switch(());
        }
        if hub.waiters.borrow().is_empty() && hub.callbacks.borrow().is_empty() {
            return Ok(());
        }
        if !hub.callbacks.borrow().is_empty() {
            continue;
        }
        hub.poll
            .borrow_mut()
            .poll(&mut events, Some(loopback::LIMIT))?;
        if events.is_empty() {
            return Err(io::Error::other(format!(
                "the hub saw no event for {:?} while {} greenlets wait",
                loopback::LIMIT,
                hub.waiters.borrow().len()
            )));
        }
        let mut waiters = hub.waiters.borrow_mut();
        let mut ready = hub.ready.borrow_mut();
        for event in events.iter() {
            if let Some(g) = waiters.remove(&event.token()) {
                ready.push_back(g);
            }
        }
    }
}

/// Runs a hub on this thread with `first` as its first greenlet, until
/// nothing is ready and nobody waits. A panic in any greenlet comes out here.
pub fn run(first: impl FnOnce() + 'static) -> io::Result<()> {
    let greenlet = Greenlet::new(|_| {
        let hub = hub();
        let result = hub_loop(&hub);
        // Whatever still waits (after an error) is killed with the hub.
        let waiting: Vec<_> = hub.waiters.borrow_mut().drain().map(|(_, g)| g).collect();
        drop(waiting);
        result
    });
    let hub = Rc::new(Hub {
        greenlet: greenlet.clone(),
        poll: RefCell::new(Poll::new()?),
        waiters: RefCell::new(HashMap::new()),
        ready: RefCell::new(VecDeque::new()),
        callbacks: RefCell::new(VecDeque::new()),
        next_token: Cell::new(0),
    });
    let previous = HUB.with(|h| h.replace(Some(hub)));
    assert!(previous.is_none(), "one hub per thread at a time");
    spawn(first)?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| greenlet.switch(())));
    let hub = HUB.with(|h| h.borrow_mut().take());
    drop(hub);
    match outcome {
        Ok(v) => v
            .downcast::<io::Result<()>>()
            .unwrap_or_else(|v| panic!("the hub returned a {}", v.type_name())),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// What one load run did.
#[derive(Debug)]
pub struct Report {
    /// Connections served.
    pub connections: usize,
    /// Bytes echoed, as counted by the server (the clients checked each one).
    pub bytes: u64,
    /// Wall time from the first accept to the last connection closed.
    pub elapsed: Duration,
}

/// Serves `conns` connections on 127.0.0.1 with the hub on this thread while a
/// client thread runs the load.
pub fn serve_load(conns: usize, msgs: usize) -> io::Result<Report> {
    loopback::ensure_fds(conns)?;
    let served = Rc::new(Cell::new(0u64));
    let closed = Rc::new(Cell::new(0usize));
    let failure: Rc<RefCell<Option<io::Error>>> = Rc::default();
    let clients = Rc::new(RefCell::new(None));
    let start = Rc::new(Cell::new(None));
    {
        let (served, closed, failure, clients, start) = (
            served.clone(),
            closed.clone(),
            failure.clone(),
            clients.clone(),
            start.clone(),
        );
        run(move || {
            let listener = match HubListener::bind(([127, 0, 0, 1], 0).into()) {
                Ok(l) => l,
                Err(e) => return *failure.borrow_mut() = Some(e),
            };
            let addr = listener
                .local_addr()
                .expect("a bound listener has an address");
            *clients.borrow_mut() = Some(loopback::start_clients(addr, conns, msgs));
            start.set(Some(Instant::now()));
            for _ in 0..conns {
                let mut conn = match listener.accept() {
                    Ok(c) => c,
                    Err(e) => return *failure.borrow_mut() = Some(e),
                };
                let (served, closed, failed) = (served.clone(), closed.clone(), failure.clone());
                let spawned = spawn(move || {
                    match serve(&mut conn) {
                        Ok(n) => served.set(served.get() + n),
                        Err(e) => *failed.borrow_mut() = Some(e),
                    }
                    closed.set(closed.get() + 1);
                });
                if let Err(e) = spawned {
                    return *failure.borrow_mut() = Some(e);
                }
            }
        })?;
    }
    let elapsed = start.get().map_or(Duration::ZERO, |s| s.elapsed());
    if let Some(e) = failure.take() {
        return Err(e);
    }
    let clients = clients.take().expect("the clients started");
    let echoed = clients
        .join()
        .map_err(|_| io::Error::other("the client thread panicked"))??;
    let bytes = served.get();
    if closed.get() != conns || bytes != echoed || bytes != loopback::total_bytes(conns, msgs) {
        return Err(io::Error::other(format!(
            "{} of {conns} connections closed; served {bytes} bytes, the clients got {echoed} back, the load has {}",
            closed.get(),
            loopback::total_bytes(conns, msgs)
        )));
    }
    Ok(Report {
        connections: conns,
        bytes,
        elapsed,
    })
}

#[allow(dead_code)] // not called where the file is included by a test or bench
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let conns = args
        .next()
        .transpose()
        .map_err(io::Error::other)?
        .unwrap_or(1000);
    let msgs = args
        .next()
        .transpose()
        .map_err(io::Error::other)?
        .unwrap_or(100);
    let report = serve_load(conns, msgs)?;
    println!(
        "hub echo server: {} connections x {} messages, {} bytes echoed and checked in {:.2?} (greenlets switching to a mio hub)",
        report.connections, msgs, report.bytes, report.elapsed
    );
    // The hub's own blocking is an error, not a hang.
    let refused = Rc::new(RefCell::new(None));
    let seen = refused.clone();
    run(move || {
        run_callback(move || {
            let listener = HubListener::bind(([127, 0, 0, 1], 0).into()).expect("bind");
            *seen.borrow_mut() = Some(listener.accept().err().map(|e| e.to_string()));
        })
    })?;
    println!(
        "a blocking accept on the hub itself: {}",
        refused
            .take()
            .flatten()
            .expect("the callback ran and was refused")
    );
    Ok(())
}
