#!/usr/bin/env python3
"""Python greenlet's equivalents of benches/switch.rs, timed with timeit.

Prints one line per benchmark, "name: N ns", so scripts/bench.sh can put the
figures next to the Rust ones. Needs `pip install greenlet`.
"""
import timeit

import greenlet
from greenlet import getcurrent, greenlet as Greenlet


def per_call_ns(stmt, number):
    """Best of five runs of `number` calls, in nanoseconds per call."""
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    return best / number * 1e9


def round_trip():
    main = getcurrent()

    def echo(v):
        while True:
            v = main.switch(v)

    g = Greenlet(echo)
    g.switch(None)
    return per_call_ns(lambda: g.switch(7), 200_000)


def create_run_die():
    return per_call_ns(lambda: Greenlet(lambda v: v).switch(1), 100_000)


class Stop(Exception):
    pass


def throw_round_trip():
    main = getcurrent()

    def catcher():
        while True:
            try:
                main.switch()
            except Stop:
                main.switch(True)

    g = Greenlet(catcher)
    g.switch()

    def once():
        g.throw(Stop)
        g.switch()  # back into its try

    return per_call_ns(once, 50_000)


def kill_on_drop():
    def once():
        main = getcurrent()
        g = Greenlet(lambda: main.switch())
        g.switch()
        del g  # reference count hits zero: GreenletExit is thrown in

    return per_call_ns(once, 50_000)


def ring():
    main = getcurrent()
    ring = []

    def member(i):
        def run():
            while True:
                (main if i == 2 else ring[i + 1]).switch()
        return run

    ring.extend(Greenlet(member(i)) for i in range(3))
    return per_call_ns(lambda: ring[0].switch(), 100_000)


if __name__ == "__main__":
    print(f"python greenlet {greenlet.__version__}")
    for name, fn in [
        ("round_trip/python/u64", round_trip),
        ("create_run_die/python", create_run_die),
        ("throw_and_kill/python/throw_round_trip", throw_round_trip),
        ("throw_and_kill/python/kill_on_drop", kill_on_drop),
        ("ring/python_3_lap", ring),
    ]:
        print(f"{name}: {fn():.1f} ns")
