//! An echo server whose per-connection code is plain synchronous Rust —
//! `fn serve(conn: &mut SyncConn)` with blocking-style `read` and `write_all`
//! — running on tokio: each connection is a `greenlet::bridge` task, and the
//! "blocking" calls wait for tokio's `TcpStream` futures with
//! `bridge::wait`, which switches back to the executor while the socket is
//! not ready. One thread serves every connection.
//!
//! The run drives it with 1,000 concurrent loopback connections (127.0.0.1
//! only) × 100 messages from a client thread, checks every byte, prints what
//! it served and exits.
//!
//! Run: `cargo run --release --example async_bridge [connections] [messages]`

use std::io;
use std::time::{Duration, Instant};

use greenlet::{bridge, Greenlet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/loopback.rs"]
pub mod loopback;

/// Each connection's greenlet stack: the echo loop needs little.
pub const STACK_SIZE: usize = 128 << 10;

/// A connection with blocking-style calls, for code that runs in a bridge task.
pub struct SyncConn {
    stream: TcpStream,
}

impl SyncConn {
    /// Wraps a tokio stream.
    pub fn new(stream: TcpStream) -> SyncConn {
        SyncConn { stream }
    }

    /// Reads what is there (at least one byte), or 0 at the end of the stream;
    /// waits, without blocking the thread, until the socket is readable.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        bridge::wait(self.stream.read(buf))
    }

    /// Writes all of `buf`, waiting while the socket is not writable.
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        bridge::wait(self.stream.write_all(buf))
    }
}

/// The per-connection code: ordinary synchronous Rust. Returns the bytes echoed.
pub fn serve(conn: &mut SyncConn) -> io::Result<u64> {
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

/// The same server as plain async code, for comparison.
pub async fn serve_async(mut stream: TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut served = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(served);
        }
        stream.write_all(&buf[..n]).await?;
        served += n as u64;
    }
}

/// How each accepted connection is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// `serve` in a bridge task per connection.
    Bridge,
    /// `serve_async` in a tokio task per connection.
    PlainAsync,
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

/// Serves `conns` connections on 127.0.0.1 with a tokio current-thread runtime
/// and a `LocalSet` on this thread, while a client thread runs the load.
pub fn run(server: Server, conns: usize, msgs: usize) -> io::Result<Report> {
    loopback::ensure_fds(conns)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let (bytes, elapsed, clients) = local.block_on(&rt, async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let clients = loopback::start_clients(listener.local_addr()?, conns, msgs);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tasks.push(match server {
                Server::Bridge => {
                    let task = Greenlet::builder()
                        .stack_size(STACK_SIZE)
                        .spawn_task(move || serve(&mut SyncConn::new(stream)))?;
                    tokio::task::spawn_local(task)
                }
                Server::PlainAsync => tokio::task::spawn_local(serve_async(stream)),
            });
        }
        let mut bytes = 0;
        for t in tasks {
            bytes += t.await.map_err(io::Error::other)??;
        }
        Ok::<_, io::Error>((bytes, start.elapsed(), clients))
    })?;
    // Every connection is closed: the clients are done.
    let echoed = clients
        .join()
        .map_err(|_| io::Error::other("the client thread panicked"))??;
    if bytes != echoed || bytes != loopback::total_bytes(conns, msgs) {
        return Err(io::Error::other(format!(
            "served {bytes} bytes, the clients got {echoed} back, the load has {}",
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
    let report = run(Server::Bridge, conns, msgs)?;
    println!(
        "bridge echo server: {} connections x {} messages, {} bytes echoed and checked in {:.2?} (sync per-connection code in greenlets, on tokio)",
        report.connections, msgs, report.bytes, report.elapsed
    );
    Ok(())
}
