#!/usr/bin/python3
"""check_metrics_http.py - start examples/metrics_http, fetch /metrics twice
with curl, parse each with the reference OpenMetrics parser, check that the
pool under load moved between the scrapes, then stop the server.  Every
step is bounded in time.

usage: check_metrics_http.py METRICS_HTTP_PROGRAM"""
import subprocess
import sys
import time

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def fail(msg):
    print('FAIL:', msg)
    sys.exit(1)


def scrape(port):
    out = subprocess.run(['curl', '-sS', '--max-time', '10', '-D', '-',
                          'http://127.0.0.1:%d/metrics' % port],
                         capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        fail('curl: %s' % out.stderr)
    head, body = out.stdout.split('\n\n', 1)  # text mode: \r\n read as \n
    if 'application/openmetrics-text' not in head:
        fail('content type: %s' % head)
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in fams.values() for s in f.samples}


def main():
    srv = subprocess.Popen([sys.argv[1], '0', '30'], stdout=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()
        if not line.startswith('port '):
            fail('no port line: %r' % line)
        port = int(line.split()[1])
        uses = ('lfpool_nuses_total', (('pool', 'db'),))
        waits = ('lfpool_wait_seconds_count', (('pool', 'db'),))
        holds = ('lfpool_hold_seconds_count', (('pool', 'db'),))
        first = scrape(port)
        # scrape again until the loaded pool has moved (bounded: on a busy
        # host, or under a sanitizer, the workers may stall for a while)
        deadline = time.monotonic() + 15
        while True:
            time.sleep(0.2)
            second = scrape(port)
            if (second[uses] > first[uses] > 0 and second[waits] > 0 and second[holds] > 0) \
                    or time.monotonic() > deadline:
                break
        if not second[uses] > first[uses] > 0:
            fail('db pool uses did not grow: %s -> %s' % (first[uses], second[uses]))
        if second[waits] <= 0 or second[holds] <= 0:
            fail('4 workers on 2 objects: waits %s, holds %s' % (second[waits], second[holds]))
        idle = ('lfpool_nuses_total', (('pool', 'cache'),))
        if second[idle] != 0:
            fail('the idle pool was used')
        quit_ = subprocess.run(['curl', '-sS', '--max-time', '10', 'http://127.0.0.1:%d/quit' % port],
                               capture_output=True, text=True, timeout=20)
        if quit_.returncode != 0:
            fail('quit: %s' % quit_.stderr)
        if srv.wait(timeout=20) != 0:
            fail('server exited %d' % srv.returncode)
        print('ok: %d samples; db uses %d -> %d, waits %d' % (len(second), first[uses], second[uses], second[waits]))
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


main()
