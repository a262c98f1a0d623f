//! The async bridge against plain async code on the same executor (tokio's
//! current-thread runtime with a `LocalSet`), in the same run.
//!
//! | benchmark | bridge | plain async |
//! | --- | --- | --- |
//! | wait, ready future | `bridge::wait(ready(x))` in a task | `ready(x).await` in an async fn |
//! | wait, pending once | `bridge::wait(YieldOnce)`: pending, woken, re-polled | `YieldOnce.await` |
//! | echo throughput | `examples/async_bridge.rs`'s sync `serve` in bridge tasks; `examples/hub.rs`'s hub | the same loop as async fns in tokio tasks |
//!
//! The echo load (100 connections × 100 messages, every byte checked) comes
//! from a client thread of its own, the same for every server.
//!
//! Run: `cargo bench --bench bridge` (figures in docs/benchmarks.md).

// Both example modules bring in examples/support/loopback.rs, each its own copy.
#![allow(clippy::duplicate_mod)]

use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use greenlet::bridge;

#[path = "../examples/async_bridge.rs"]
#[allow(dead_code)]
mod async_bridge;

#[path = "../examples/hub.rs"]
#[allow(dead_code)]
mod hub;

/// Pending once (waking its waker at once), then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Runs `fut` as a local task on a fresh tokio current-thread runtime.
fn on_tokio<F: Future + 'static>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async { tokio::task::spawn_local(fut).await.unwrap() })
}

fn waits(c: &mut Criterion) {
    let mut group = c.benchmark_group("bridge_wait");
    group.bench_function(BenchmarkId::new("bridge", "ready"), |b| {
        b.iter_custom(|iters| {
            on_tokio(bridge::spawn(move || {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(bridge::wait(ready(black_box(i))));
                }
                start.elapsed()
            }))
        })
    });
    group.bench_function(BenchmarkId::new("plain_async", "ready"), |b| {
        b.iter_custom(|iters| {
            on_tokio(async move {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(ready(black_box(i)).await);
                }
                start.elapsed()
            })
        })
    });
    group.bench_function(BenchmarkId::new("bridge", "pending_once"), |b| {
        b.iter_custom(|iters| {
            on_tokio(bridge::spawn(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    bridge::wait(YieldOnce(false));
                }
                start.elapsed()
            }))
        })
    });
    group.bench_function(BenchmarkId::new("plain_async", "pending_once"), |b| {
        b.iter_custom(|iters| {
            on_tokio(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    YieldOnce(false).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

const CONNS: usize = 100;
const MSGS: usize = 100;

fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(async_bridge::loopback::total_bytes(
        CONNS, MSGS,
    )));
    let timed = |run: &dyn Fn() -> Duration, iters: u64| (0..iters).map(|_| run()).sum();
    group.bench_function("bridge", |b| {
        b.iter_custom(|iters| {
            timed(
                &|| {
                    async_bridge::run(async_bridge::Server::Bridge, CONNS, MSGS)
                        .unwrap()
                        .elapsed
                },
                iters,
            )
        })
    });
    group.bench_function("hub", |b| {
        b.iter_custom(|iters| timed(&|| hub::serve_load(CONNS, MSGS).unwrap().elapsed, iters))
    });
    group.bench_function("plain_async", |b| {
        b.iter_custom(|iters| {
            timed(
                &|| {
                    async_bridge::run(async_bridge::Server::PlainAsync, CONNS, MSGS)
                        .unwrap()
                        .elapsed
                },
                iters,
            )
        })
    });
    group.finish();
}

/// The three echo servers again, in rotation (bridge, hub, plain async, and
/// again), so that a machine whose load changes during the run favours none:
/// criterion runs each benchmark's samples together. Prints the median of
/// each and the ratios.
fn echo_interleaved() {
    const ROUNDS: usize = 9;
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..ROUNDS {
        times[0].push(
            async_bridge::run(async_bridge::Server::Bridge, CONNS, MSGS)
                .unwrap()
                .elapsed,
        );
        times[1].push(hub::serve_load(CONNS, MSGS).unwrap().elapsed);
        times[2].push(
            async_bridge::run(async_bridge::Server::PlainAsync, CONNS, MSGS)
                .unwrap()
                .elapsed,
        );
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let [bridge, hub, plain] = times.map(|mut v| median(&mut v));
    let bytes = async_bridge::loopback::total_bytes(CONNS, MSGS) as f64;
    let rate = |d: Duration| bytes / d.as_secs_f64() / (1 << 20) as f64;
    println!(
        "echo, {ROUNDS} interleaved rounds of {CONNS} connections x {MSGS} messages (median):"
    );
    println!(
        "  bridge       {bridge:>10.2?}  {:>6.2} MiB/s",
        rate(bridge)
    );
    println!("  hub          {hub:>10.2?}  {:>6.2} MiB/s", rate(hub));
    println!("  plain async  {plain:>10.2?}  {:>6.2} MiB/s", rate(plain));
    println!(
        "  throughput vs plain async: bridge {:.2}x, hub {:.2}x",
        plain.as_secs_f64() / bridge.as_secs_f64(),
        plain.as_secs_f64() / hub.as_secs_f64()
    );
}

criterion_group!(benches, waits, echo);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    echo_interleaved();
}
