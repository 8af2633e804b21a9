#!/usr/bin/env python3
"""Pool lfpool-bench JSON runs: per-invocation medians and per-round ratios.

usage: summarize.py runs/run-0*.json > runs/summary.txt

The ratio lfpool/peer is computed inside each round (both figures from the
same round of the same invocation: peers are interleaved round by round),
then the median over all rounds of all invocations is quoted, with the
10th and 90th percentiles (the table's P2 ratios are of throughputs, the
inverse of these ns ratios).  lfpool-h (the handle calls, P6) is also
compared with DPDK.
"""
import json
import statistics
import sys


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def load(path):
    d = json.load(open(path))
    by = {}
    for r in d["results"]:
        if r.get("na"):
            continue
        key = (r["threads"], r["max_size"], r["hold"])
        by.setdefault(key, {})[r["peer"]] = r
    return by


def main(paths):
    runs = [load(p) for p in paths]
    cases = sorted({k for r in runs for k in r})
    print("# %d invocations: %s" % (len(paths), " ".join(paths)))
    print("# ns/pair: median over every round of every invocation [min..max];")
    print("# ratio lfpool/peer of ns/pair, computed per round, median [10th..90th pct]")
    for case in cases:
        per_peer = {}
        ratios = {}
        for r in runs:
            peers = r.get(case, {})
            if "lfpool" not in peers:
                continue
            lf = [x["ns_per_pair"] for x in peers["lfpool"]["rounds"]]
            for name, res in peers.items():
                ns = [x["ns_per_pair"] for x in res["rounds"]]
                per_peer.setdefault(name, []).extend(ns)
                if name != "lfpool":
                    ratios.setdefault(name, []).extend(a / b for a, b in zip(lf, ns))
            if "lfpool-h" in peers and "dpdk" in peers:  # P6: the handle calls against DPDK
                lh = [x["ns_per_pair"] for x in peers["lfpool-h"]["rounds"]]
                dp = [x["ns_per_pair"] for x in peers["dpdk"]["rounds"]]
                ratios.setdefault("lfpool-h/dpdk", []).extend(a / b for a, b in zip(lh, dp))
            others = [n for n in peers if n in ("mutex", "apr")]
            if case[1] and case[0] > 2 and others:  # P3: against the best of mutex and APR
                best = [min(peers[n]["rounds"][i]["ns_per_pair"] for n in others)
                        for i in range(len(lf))]
                ratios.setdefault("best(mutex,apr)", []).extend(a / b for a, b in zip(lf, best))
        for name in ["lfpool", "lfpool-h", "mutex", "apr", "dpdk"]:
            if name not in per_peer:
                continue
            xs = per_peer[name]
            line = "%-12s %-7s ns/pair median %7.1f [%.1f..%.1f] n=%d" % (
                str(case), name, statistics.median(xs), min(xs), max(xs), len(xs))
            if name in ratios:
                rs = ratios[name]
                line += "   lfpool/%s: %.3f [%.3f..%.3f]" % (
                    name, statistics.median(rs), pct(rs, 0.1), pct(rs, 0.9))
            print(line)
        if "lfpool-h/dpdk" in ratios:
            rs = ratios["lfpool-h/dpdk"]
            print("%-12s lfpool-h/dpdk per round (P6): %.3f [%.3f..%.3f]" % (
                str(case), statistics.median(rs), pct(rs, 0.1), pct(rs, 0.9)))
        if "best(mutex,apr)" in ratios:
            rs = ratios["best(mutex,apr)"]
            print("%-12s lfpool/best(mutex,apr) per round: %.3f [%.3f..%.3f]" % (
                str(case), statistics.median(rs), pct(rs, 0.1), pct(rs, 0.9)))
        for r in runs:
            peers = r.get(case, {})
            if "lfpool" in peers and case[0] > 2:
                print("%-12s   fairness lfpool %.2f, starved %d; p99 %d ns" % (
                    str(case), peers["lfpool"]["min_thread_share"],
                    peers["lfpool"]["starved_thread_runs"], peers["lfpool"]["get_p99_ns"]))


if __name__ == "__main__":
    main(sys.argv[1:])
