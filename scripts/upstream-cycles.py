#!/usr/bin/env python3
"""upstream-cycles.py: the upstream Python client's side of the perf table.

Runs the unchanged upstream client (distcompute_client, found on PYTHONPATH:
../shared/upstream/distcompute-client-1.0.0 beside the repository) through
WARMUP + CYCLES job cycles (new_job, one log, complete_job) against the
tracker at URL, and prints one JSON line with the figures of the last CYCLES
cycles: wall seconds, the process's CPU seconds (user + system, getrusage),
the requests sent and the median cycle. internal/perftable runs it between the Go
configurations.

    PYTHONPATH=DIR python3 scripts/upstream-cycles.py URL CYCLES WARMUP
"""
import json
import resource
import sys
import time

import distcompute_client as dc


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    url, cycles, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = dc.init(url=url, stage="a", nickname="perftable", verbose=False)
    # Count the requests the client sends (every one goes through the
    # requests session's request method).
    sent = [0]
    request = client.s.request

    def counting(*args, **kwargs):
        sent[0] += 1
        return request(*args, **kwargs)

    client.s.request = counting
    t0 = c0 = r0 = None
    gaps = []
    for i in range(warmup + cycles):
        if i == warmup:
            t0, c0, r0 = time.perf_counter(), cpu_seconds(), sent[0]
        s = time.perf_counter()
        client.new_job()
        client.log("step 1 of 1")
        client.complete_job("output")
        if i >= warmup:
            gaps.append(time.perf_counter() - s)
    wall, cpu, reqs = time.perf_counter() - t0, cpu_seconds() - c0, sent[0] - r0
    client.bye()
    gaps.sort()
    print(json.dumps({"cycles": cycles, "wall_s": wall, "cpu_s": cpu, "requests": reqs,
                      "cycle_median_ms": 1e3 * gaps[len(gaps) // 2]}))


if __name__ == "__main__":
    main()
