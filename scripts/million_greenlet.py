"""Python greenlet's side of examples/million.rs: N live suspended greenlets.

    python3 scripts/million_greenlet.py [count]      (default 1,000,000)

Prints resident memory per live greenlet, the time to create and start them,
a cold round through all of them, and finishing them, as the Rust example does.
"""
import resource, sys, time
import greenlet

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    main_g = greenlet.getcurrent()

    def body(i):
        local = [i] * 4          # something on the greenlet's own frame
        got = main_g.switch(i)   # pause once
        main_g.switch(got + local[0])
        return i

    before = rss_bytes()
    t = time.perf_counter()
    gs = [greenlet.greenlet(body) for _ in range(count)]
    for i, g in enumerate(gs):
        g.switch(i)
    created = time.perf_counter() - t
    alive = rss_bytes()
    t = time.perf_counter()
    for i, g in enumerate(gs):
        assert g.switch(1) == i + 1
    cold = time.perf_counter() - t
    t = time.perf_counter()
    for i, g in enumerate(gs):
        assert g.switch() == i and g.dead
    finished = time.perf_counter() - t
    print(f"python greenlet {greenlet.__version__}: {count} live suspended greenlets")
    print(f"  created and started: {created * 1e9 / count:.0f} ns each")
    print(f"  resident memory per live greenlet: {(alive - before) / count:.0f} bytes")
    print(f"  cold round trip through all: {cold * 1e9 / count:.0f} ns each")
    print(f"  resumed once and finished: {finished * 1e9 / count:.0f} ns each")

main()
