#!/usr/bin/python3
"""check_openmetrics.py - parse lfpool's OpenMetrics text with the
reference parser (python3-prometheus-client) and compare every sample with
what the C API reported for the same pools.

usage: check_openmetrics.py DUMP_PROGRAM       (runs it: om_dump's output)
       check_openmetrics.py --text FILE         (only parse and check structure)
Exits non-zero with a message on the first mismatch."""
import json
import math
import subprocess
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

# OpenMetrics family -> JSON stats key, where the name differs
RENAMED = {
    'wait_time_seconds': 'wait_time', 'create_time_seconds': 'create_time',
    'running_seconds': 'running', 'rel_hk_last_seconds': 'rel_hk_last',
    'time_per_hk_seconds': 'time_per_hk', 'timeout_seconds': 'timeout',
    'delay_seconds': 'delay', 'max_avail_delay_seconds': 'max_avail_delay',
    'max_using_delay_warn_seconds': 'max_using_delay_warn',
    'max_using_delay_kill_seconds': 'max_using_delay_kill',
}
CLOCK_DEPENDENT = {'running', 'rel_hk_last'}  # move between the two reads
HISTS = {'lfpool_wait_seconds': 'wait', 'lfpool_hold_seconds': 'hold',
         'lfpool_create_seconds': 'create'}


def fail(msg):
    print('FAIL:', msg)
    sys.exit(1)


def parse(text):
    if not text.endswith('# EOF\n'):
        fail('no "# EOF" at the end')
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for line in text.splitlines():
        if line.startswith('# TYPE '):
            name = line.split()[2]
            if sum(1 for l in text.splitlines() if l.startswith('# TYPE %s ' % name)) != 1:
                fail('family %s declared twice' % name)
    for f in fams.values():
        if f.type == 'counter':
            for s in f.samples:
                if not s.name.endswith('_total'):
                    fail('counter sample without _total: %s' % s.name)
        if f.documentation == '':
            fail('no HELP for %s' % f.name)
    return fams


def json_value(stats, key):
    if key == 'sem_value':
        return stats['sem']['value'] if stats['sem'] is not None else -1
    v = stats[key]
    if v is None:  # timeout: null when unlimited
        return math.inf
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    return float(v)


def check(doc, fams):
    names = doc['names']
    pools = {n: p for n, p in zip(names, doc['pools'])}
    checked = 0
    for fname, fam in fams.items():
        if fam.type == 'histogram':
            kind = HISTS[fname]
            by_pool = {}
            for s in fam.samples:
                by_pool.setdefault(s.labels['pool'], []).append(s)
            if set(by_pool) != set(names):
                fail('%s: pools %s, want %s' % (fname, sorted(by_pool), sorted(names)))
            for pname, samples in by_pool.items():
                h = pools[pname]['hist'][kind]
                buckets = [s for s in samples if s.name.endswith('_bucket')]
                cum = 0
                for i, s in enumerate(buckets):
                    cum += h['count'][i]
                    le = float(s.labels['le'])
                    want_le = math.inf if i == len(h['count']) - 1 else 2.0 ** (i - 20)
                    if le != want_le:
                        fail('%s bucket %d: le %r, want %r' % (fname, i, le, want_le))
                    if s.value != cum:
                        fail('%s{pool=%r,le=%s}: %s, want %s' % (fname, pname, s.labels['le'], s.value, cum))
                if len(buckets) != len(h['count']):
                    fail('%s: %d buckets' % (fname, len(buckets)))
                count = [s.value for s in samples if s.name.endswith('_count')][0]
                ssum = [s.value for s in samples if s.name.endswith('_sum')][0]
                if count != h['total'] or abs(ssum - h['sum']) > 1e-9 * max(1, h['sum']):
                    fail('%s{pool=%r}: count %s sum %s, want %s %s' % (fname, pname, count, ssum, h['total'], h['sum']))
                checked += 1
            continue
        key = fname[len('lfpool_'):]
        key = RENAMED.get(key, key)
        for s in fam.samples:
            pname = s.labels['pool']
            want = json_value(pools[pname]['stats'], key)
            if key in CLOCK_DEPENDENT:
                ok = abs(s.value - want) < 5.0
            else:
                ok = s.value == want or (math.isinf(want) and math.isinf(s.value))
            if not ok:
                fail('%s{pool=%r} = %r, JSON says %r' % (s.name, pname, s.value, want))
            checked += 1
    # every pool appears in every family
    for fname, fam in fams.items():
        seen = {s.labels['pool'] for s in fam.samples}
        if seen != set(names):
            fail('%s: pools %s' % (fname, sorted(seen)))
    return checked


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--text':
        fams = parse(open(sys.argv[2]).read())
        print('ok: %d families' % len(fams))
        return
    out = subprocess.run([sys.argv[1]], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        fail('%s exited %d: %s' % (sys.argv[1], out.returncode, out.stderr))
    head, text = out.stdout.split('\n--\n', 1)
    doc = json.loads(head)
    fams = parse(text)
    n = check(doc, fams)
    p0 = doc['pools'][0]
    if p0['stats']['nwaits'] == 0 or p0['stats']['ntimeouts'] != 1:
        fail('pool "main" should have waited and timed out once: %s' % p0['stats'])
    if doc['pools'][2]['hist']['hold']['total'] != doc['pools'][2]['stats']['nuses']:
        fail('pool "hold": one hold per use')
    print('ok: %d families, %d samples and histograms checked' % (len(fams), n))


main()
