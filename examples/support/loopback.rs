//! The loopback echo load shared by `examples/async_bridge.rs`,
//! `examples/hub.rs`, their tests and the bridge benchmark: `conns` clients
//! connect at once to a server on 127.0.0.1, each sends `msgs` messages of
//! varying length and checks that every byte comes back. The clients are
//! plain async code on a tokio current-thread runtime of their own thread, so
//! that every server is measured against the same load.

use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A whole load must finish in this time, or it stops with an error (a hang
/// guard, not a speed requirement).
pub const LIMIT: Duration = Duration::from_secs(300);

/// The length of message `m` of connection `id` (1 to 512 bytes).
pub fn message_len(id: usize, m: usize) -> usize {
    1 + (id * 131 + m * 71) % 512
}

/// Byte `i` of message `m` of connection `id`.
pub fn message_byte(id: usize, m: usize, i: usize) -> u8 {
    ((id * 7 + m * 13 + i) % 251) as u8
}

/// Every byte the load sends (and so every byte an echo server serves).
pub fn total_bytes(conns: usize, msgs: usize) -> u64 {
    (0..conns)
        .flat_map(|id| (0..msgs).map(move |m| message_len(id, m) as u64))
        .sum()
}

/// Makes sure this process may open a socket for each end of `conns`
/// connections (raising the soft limit up to the hard one if need be).
pub fn ensure_fds(conns: usize) -> io::Result<()> {
    #[cfg(unix)]
    {
        let want = (2 * conns + 256) as libc::rlim_t;
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < want {
            if lim.rlim_max < want {
                return Err(io::Error::other(format!(
                    "the loopback load needs {want} file descriptors; this process may open only {}",
                    lim.rlim_max
                )));
            }
            lim.rlim_cur = want;
            // SAFETY: setrlimit reads the struct we pass.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    let _ = conns;
    Ok(())
}

/// One client: connects, sends its messages one at a time, checks each echo.
async fn client(addr: SocketAddr, id: usize, msgs: usize) -> io::Result<u64> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut out = Vec::with_capacity(512);
    let mut back = vec![0u8; 512];
    let mut sent = 0;
    for m in 0..msgs {
        let len = message_len(id, m);
        out.clear();
        out.extend((0..len).map(|i| message_byte(id, m, i)));
        stream.write_all(&out).await?;
        stream.read_exact(&mut back[..len]).await?;
        if back[..len] != out[..] {
            return Err(io::Error::other(format!(
                "connection {id}, message {m}: the echo differs from what was sent"
            )));
        }
        sent += len as u64;
    }
    stream.shutdown().await?;
    // The server closes its end once it has seen ours closed.
    if stream.read(&mut back).await? != 0 {
        return Err(io::Error::other(format!(
            "connection {id}: bytes after the last echo"
        )));
    }
    Ok(sent)
}

/// Runs the load against `addr` on a thread of its own; join the handle for
/// the bytes echoed (all checked).
pub fn start_clients(
    addr: SocketAddr,
    conns: usize,
    msgs: usize,
) -> thread::JoinHandle<io::Result<u64>> {
    thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let all = async {
                let clients: Vec<_> = (0..conns)
                    .map(|id| tokio::spawn(client(addr, id, msgs)))
                    .collect();
                let mut total = 0;
                for c in clients {
                    total += c.await.map_err(io::Error::other)??;
                }
                Ok::<u64, io::Error>(total)
            };
            match tokio::time::timeout(LIMIT, all).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::other(format!(
                    "the loopback load did not finish in {LIMIT:?}"
                ))),
            }
        })
    })
}
