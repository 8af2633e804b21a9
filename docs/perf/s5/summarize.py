# summarize.py DIR [--pooled] - the tight-loop tables of run.sh, per build
# and pinning (--pooled: pinned and unpinned runs together): for each loop,
# ns per object pair and the ratio to DPDK's (single or bulk) pair of the
# same run, as "min-max (median)" over the runs.
import collections, glob, re, statistics, sys

d = sys.argv[1]
pooled = '--pooled' in sys.argv[2:]
ns = collections.defaultdict(list)
ratio = collections.defaultdict(list)
for f in sorted(glob.glob(d + '/tight-*.txt')):
    _, build, pin, _ = f.split('/')[-1][:-4].split('-')
    pin = 'any' if pooled else 'pinned' if pin.startswith('pin') else 'free'
    for line in open(f):
        m = re.match(r'^(\S+)\s+.*?\s([\d.]+)\s+([\d.]+)\s*$', line)
        if m and not line.startswith('loop'):
            ns[(build, pin, m.group(1))].append(float(m.group(2)))
            ratio[(build, pin, m.group(1))].append(float(m.group(3)))

def span(v):
    return '%.2f-%.2f (%.2f)' % (min(v), max(v), statistics.median(v))

print('%-5s %-7s %-14s %-24s %s' % ('build', 'pinning', 'loop', 'ns per object pair', 'vs DPDK'))
for k in sorted(ns):
    print('%-5s %-7s %-14s %-24s %s (%d runs)' % (k[0], k[1], k[2], span(ns[k]), span(ratio[k]), len(ns[k])))
