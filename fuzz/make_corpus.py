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
Connection pools (byte 2 with 0x80: 1 validate, 2 validate_idle 1 s,
4 max_creating 1 (2 with 0x10), 8 create_backoff 0.5 s, 0x40 max_waiters 1):
op bytes 0xF0 + n: n 0-5 ret_broken of a held object, 6-9 validate verdict
(slot arg%48, (arg/48)%3: 0 good, 1 bad, 2 error), 10-11 ret_broken of an
object not out, 12-15 EINVAL probes of ret_broken.
Bulk ops (byte 2 with 0x20): op bytes 0xD0 + n: n 0-7 get_bulk (arg: n = 1 +
arg%4, 4: 1 ms timeout, 8: n = max_size + 1 + (arg>>4)%3 on a bounded pool,
EINVAL), 8-15 ret_bulk of up to 1 + arg%4 held handles from slot (arg>>4)*3
on, with (arg>>2)%4: 1 a stale handle, 2 the first one twice, 3 a NULL obj.
"""
import os
import sys

GET, GETW, RET, DRET, FRET, CLK, HK, ST, FUN, INV, HEALTH, SHUT = 0, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15
BROKEN, VALID, BROKEN2, BINV = 0xF0, 0xF6, 0xFA, 0xFC
BGET, BRET = 0xD0, 0xD8
BULK = 0x20  # byte 2: bulk ops on
BW, BTOO, BSTALE, BTWICE, BNULL = 4, 8, 1 << 2, 2 << 2, 3 << 2  # arg bits


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
    "conn_broken": enc([3, 1, 0x80 | 4, 0, 0, 0, 0, 0x21],
                       [GET, GET, BROKEN, (BROKEN, 1), ST, GET, GET, (GETW, 0), BROKEN2,
                        (BINV, 0), (BINV, 1), (BINV, 2), RET, RET, ST, (SHUT, 0), ST]),
    "conn_broken_handles_kill": enc([3, 1, 0x80 | 1, 2, 0, 0, 0, 0x33],
                                    [(GET, 1), (GET, 1), (CLK, 12), HK, (BROKEN, 0), (BROKEN, 1),
                                     (GET, 1), (BROKEN, 2), (BROKEN2, 0), ST, (SHUT, 0)]),
    "conn_broken_kill_close": enc([3, 1, 0x80, 2, 0, 1, 0, 0x34],
                                  [GET, (GET, 1), (CLK, 12), HK, BROKEN, (BROKEN, 1), GET, ST]),
    "conn_validate": enc([3, 2, 0x80 | 1, 0, 0, 0, 0, 0x44],
                         [GET, GET, RET, RET, (VALID, 0), (VALID, 1 + 96), GET, GET, ST, RET, RET,
                          (VALID, 48 + 2), GET, GET, GET, ST, RET, RET, RET, ST]),
    "conn_validate_idle": enc([2, 1, 0x80 | 1 | 2, 0, 0, 0, 0, 0x45],
                              [GET, RET, (VALID, 48), GET, RET, (CLK, 8), GET, RET, GET, RET, ST]),
    "conn_backoff": enc([2, 0, 0x80 | 8 | 4 | 0x40, 0, 0, 0, 0, 0x46],
                        [(FUN, 1), GET, GET, GET, (CLK, 2), (FUN, 5), GET, GET, (CLK, 4), GET,
                         (CLK, 8), GET, GET, ST, RET, RET, ST]),
    "bulk_basic": enc([4, 1, BULK, 0, 0, 0, 0, 0x11],
                      [(BGET, 1), (BGET, 1 | BW), ST, (BRET, 3), ST, (BGET, 3), (BGET, 0),
                       (BGET, BW), (GET, 1), (BRET, 3 | BTWICE), (BRET, BSTALE), (BGET, 1),
                       (BRET, 0 | BNULL), (BGET, BTOO), (BGET, BTOO | 0x20), RET, RET, ST,
                       (BRET, 3), (SHUT, 0), (BGET, 1), (BGET, BTOO), (BRET, BSTALE), ST]),
    "bulk_fun_verdicts": enc([5, 0, BULK, 0, 0, 0, 0, 0x12],
                             [(FUN, 0), (FUN, 1), (BGET, 2), ST, (FUN, 5), (BGET, 2), (BGET, 1),
                              (FUN, 0), (FUN, 2), (BGET, 2 | BW), ST, (BRET, 3),
                              (FUN, 9), (BGET, 3), (BGET, 3), ST, (BRET, 3 | BSTALE), ST]),
    "bulk_kill_defer": enc([4, 1, BULK, 2, 0, 0, 0, 0x13],
                           [(BGET, 2), (CLK, 12), HK, (BGET, 1), ST, (BRET, 3), ST, (BGET, 3),
                            (BRET, 1 | BTWICE), RET, ST]),
    "bulk_kill_close": enc([4, 1, BULK, 2, 0, 1, 0, 0x14],
                           [(BGET, 2), (CLK, 12), HK, (BGET, 2), ST, (BRET, 3 | BTWICE), ST,
                            (BGET, 3 | BW), (BRET, 3), ST]),
    "bulk_lazy_unbounded": enc([0, 2, BULK, 0, 0, 8, 0, 0x15],
                               [(BGET, 3), ST, (BGET, 3 | BW), (BGET, BTOO), ST, (BRET, 1),
                                (BRET, 3 | 0x10), (BRET, 3), ST]),
    "bulk_recycle": enc([4, 1, BULK, 0, 1, 0, 0, 0x16],
                        [(BGET, 3), (BRET, 3), (CLK, 8), HK, ST, (BGET, 2), (BRET, 3), HK,
                         (BGET, 3), ST]),
    "bulk_conn_validate": enc([4, 1, 0x80 | BULK | 1, 0, 0, 0, 0, 0x17],
                              [(BGET, 2), (BRET, 3), (VALID, 1 + 96), (VALID, 48 + 2), (VALID, 51),
                               (BGET, 2), ST, (BROKEN, 0), (BGET, 1), ST, (BRET, 3), (BGET, 3),
                               ST, (BRET, 3), ST]),
    "bulk_conn_backoff": enc([3, 0, 0x80 | BULK | 8 | 4, 0, 0, 0, 0, 0x18],
                             [(FUN, 0), (FUN, 1), (BGET, 2), (BGET, 2), (CLK, 2), (BGET, 2),
                              (BGET, 3 | BW), ST, (BRET, 3), ST]),
    "bulk_async_refill": enc([4, 2, BULK, 0, 1, 2, 0, 0x19],
                             [(BGET, 3), (HEALTH, 1), (BRET, 3), HK, ST, (BGET, 3), (BRET, 3),
                              (CLK, 8), HK, ST, (BGET, 2 | BW), ST]),
    "bulk_ret_codes": enc([4, 1, BULK, 2, 0, 0, 0, 0x1a],
                          [(BGET, 1), (BRET, 0), (BGET, 1), (CLK, 12), HK, (BRET, 3 | BSTALE),
                           (BGET, 1), (CLK, 12), HK, (BRET, 1 | BNULL), ST]),
}

if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(d, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {d}")
