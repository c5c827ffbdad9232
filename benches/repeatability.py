#!/usr/bin/env python3
"""How repeatable precheck's GPU latencies are: runs the same variants RUNS times (separate
processes, as nightly runs are) and prints each variant's median latencies and their spread
(max / min - 1), with the SM clock NVML read after each timing and
the time the power limit held the clocks down during it.

    python3 benches/repeatability.py --precheck path/to/precheck [--runs 5] [--filter /bf16/ ...]
"""
import argparse
import json
import os
import subprocess
import tempfile


def run_once(binary, suite, filters, iters):
    out = tempfile.mkdtemp(prefix="precheck-repeat-")
    cmd = [binary, "run", suite, "--backend", "cuda", "--out", out, "--iterations", str(iters), "--warmup", "20"]
    for f in filters:
        cmd += ["--filter", f]
    subprocess.run(cmd, check=False, capture_output=True, text=True)
    records = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
    return {r["id"]: (r["latency"]["median_ms"], end_clock(r)) for r in records if r.get("latency")}


def end_clock(record):
    """The SM clock (MHz) NVML read after the variant's timing and how long the power limit held
    the clocks down during it (ms), if NVML was read."""
    clocks = record.get("clocks")
    if not clocks:
        return None
    before, after = clocks["before"].get("power_capped_ns"), clocks["after"].get("power_capped_ns")
    capped = f"{(after - before) / 1e6:.0f}ms" if before is not None and after is not None else "?"
    return f"{clocks['after']['sm_mhz']}/{capped}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--precheck", required=True)
    parser.add_argument("--suite", default="suites/paligemma.yaml")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--filter", action="append", default=[])
    args = parser.parse_args()
    runs = [run_once(args.precheck, args.suite, args.filter, args.iters) for _ in range(args.runs)]
    print(f"{'variant':40} {'medians of ' + str(args.runs) + ' runs (ms)':44} {'spread':>8}  SM MHz after timing / power-capped ms during it")
    for variant in runs[0]:
        medians = [r[variant][0] for r in runs if variant in r]
        clocks = [str(r[variant][1]) for r in runs if variant in r]
        spread = max(medians) / min(medians) - 1
        print(f"{variant:40} {' '.join(f'{m:.4f}' for m in medians):44} {spread * 100:7.2f} %  {' '.join(clocks)}")


if __name__ == "__main__":
    main()
