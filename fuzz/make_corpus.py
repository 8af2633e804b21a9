#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_pool (fuzz/corpus/*.bin).

Input = 8 configuration bytes, then (op, arg) pairs; see fuzz_pool.c.
Config: max_size%7, min_size%4, max_use%4, kill (x%3: 0 none, else 0.5+x%16),
max_avail_delay (same), flags (1 CLOSE, 2 health, 4 stats hook, 8 lazy,
16 warn, 0xE0 invalid-config probe), d6 (health_freq 1+x%3, 0x80 short
timeout), tracer junk byte.
Ops (x%16): 0-3 get(0), 4 get(1 ms), 5-6 ret, 7 double ret, 8 foreign ret,
9 clock += arg%64 * 0.25 s, 10 housekeep, 11 stats, 12 fun verdict
(arg%4: 0 ok, 1 fail, 2 duplicate), 13 EINVAL probe, 14 health verdict
(slot arg%48, (arg/48)%3: 0 bad, 1 error, 2 good), 15 shutdown (arg%4==0)
or stats.
"""
import os
import sys

GET, GETW, RET, DRET, FRET, CLK, HK, ST, FUN, INV, HEALTH, SHUT = 0, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15


def enc(cfg, ops):
    out = bytearray(cfg)
    for op in ops:
        if isinstance(op, tuple):
            out += bytes(op)
        else:
            out += bytes((op, 0))
    return bytes(out)


SEEDS = {
    "basic_bounded": enc([3, 1, 0, 0, 0, 0, 0, 0x41],
                         [GET, GET, GET, GET, (GETW, 0), RET, RET, RET, DRET, FRET, (FRET, 1),
                          (FRET, 2), ST, GET, RET]),
    "kill_defer": enc([2, 0, 0, 2, 0, 0, 0, 0x22],
                      [GET, GET, (CLK, 12), HK, GET, ST, RET, RET, RET, DRET, ST, (SHUT, 0)]),
    "kill_close": enc([2, 0, 0, 2, 0, 1, 0, 0x5c],
                      [GET, GET, (CLK, 12), HK, GET, ST, RET, RET, RET, DRET, ST]),
    "recycle": enc([4, 1, 0, 0, 1, 0, 0, 0x7f],
                   [GET, GET, GET, RET, RET, RET, (CLK, 8), HK, ST, GET, GET, RET, RET, HK]),
    "health": enc([4, 2, 0, 0, 0, 2, 0, 0x01],
                  [(HEALTH, 0), (HEALTH, 49), GET, GET, GET, RET, RET, RET, HK, ST, HK, ST,
                   (HEALTH, 96 + 0), HK, ST]),
    "wearout": enc([2, 1, 1, 0, 0, 0, 0, 0xff],
                   [GET, RET, GET, RET, GET, RET, ST, HK, ST]),
    "fun_verdicts": enc([3, 0, 0, 0, 0, 0, 0, 0xc3],
                        [(FUN, 1), GET, (FUN, 5), GET, (FUN, 9), GET, GET, (FUN, 2), GET, (FUN, 13),
                         GET, RET, ST]),
    "lazy_unbounded_stats": enc([0, 3, 0, 0, 0, 4 | 8, 0, 0x22],
                                [ST, GET, GET, GET, GET, GET, ST, RET, RET, ST, RET, RET, RET, ST]),
    "invalid_cfg": enc([2, 1, 0, 0, 0, 0xE0, 0, 3], [GET, RET]),
    "invalid_cfg2": enc([2, 1, 0, 0, 0, 0xE0, 0, 1], [GET, RET]),
    "shutdown_held": enc([3, 1, 0, 0, 0, 0, 0, 0],
                         [GET, GET, (SHUT, 0), GET, RET, RET, DRET, HK, ST]),
    "einval": enc([2, 1, 0, 0, 0, 0, 0x80, 0],
                  [(INV, 0), (INV, 1), (INV, 2), (INV, 3), (INV, 4), (INV, 5), GET, GET,
                   (GETW, 1), RET, RET, ST]),
    "everything": enc([5, 2, 3, 4, 3, 2 | 4 | 16, 1, 0x80],
                      [GET, GET, GET, (CLK, 4), RET, (HEALTH, 1), HK, GET, (FUN, 1), GET,
                       (CLK, 30), HK, ST, RET, RET, RET, (CLK, 30), HK, GET, (FUN, 2), GET,
                       DRET, FRET, ST, (SHUT, 0), RET, RET, ST]),
    "everything_close": enc([5, 2, 3, 4, 3, 1 | 2 | 4 | 16, 2, 0x0a],
                            [GET, GET, GET, (CLK, 4), RET, (HEALTH, 50), HK, GET, (FUN, 1), GET,
                             (CLK, 30), HK, ST, RET, RET, RET, (CLK, 30), HK, GET, (FUN, 2), GET,
                             DRET, FRET, ST, RET, RET, ST]),
}

if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(d, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {d}")
