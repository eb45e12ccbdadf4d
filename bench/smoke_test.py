#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""smoke_test: runs tandem-bench in its tiny mode and checks its report.

  usage: smoke_test.py BUILD_DIR

tandem-bench --tiny shrinks every workload (a few seconds in all: its
figures mean nothing) and writes --json and, when gnuplot is installed,
--plot.  The test passes when tandem-bench exits 0 and the JSON has the
expected shape: the machine and the versions, roundtrip, metrics, forkjoin
and python measured (server measured or skipped, never failed), every peer
of roundtrip present with the waits of tandem and uv_queue_work, and its
--breakdown, metrics' on/off pairs, and every figure a finite positive
number (a wait's percentiles may be 0 ns).  It checks the shape of the
report, never a speed.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.realpath(__file__))
ROUNDTRIP_PEERS = {"uv", "uv_n", "tandem", "textbook", "gil"}
# Figure fields that are numbers, and must be positive when present.
NUMBER_FIELDS = ("median", "min", "max", "vs_tandem", "us_per_job",
                 "efficiency", "speedup", "speedup_vs_tandem", "workers",
                 "window", "jobs_timed")
# Peers of roundtrip whose results carry a wait histogram.
WAIT_PEERS = ("uv", "uv_n", "tandem")


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def positive(v, zero_ok=False):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and (v > 0 or (zero_ok and v == 0)))


def check_figures(doc):
    figs = doc.get("figures")
    check(isinstance(figs, list) and figs, "no figures")
    for f in figs:
        where = f"figure {f.get('workload')}/{f.get('case')}/{f.get('peer')}"
        for key in ("workload", "case", "peer", "metric"):
            check(isinstance(f.get(key), str) and f[key], f"{where}: {key}")
        check("median" in f, f"{where}: no median")
        # A job may wait 0 ns: a worker already looking when it came.
        waits = f["metric"].startswith(("wait_", "run_"))
        for key in NUMBER_FIELDS:
            if key in f:
                check(positive(f[key], zero_ok=waits and key == "median"),
                      f"{where}: {key} = {f[key]!r} is not a positive number")
        if "min" in f and "max" in f:
            check(f["min"] <= f["median"] <= f["max"],
                  f"{where}: median outside min..max")
    by = {}
    for f in figs:
        by.setdefault(f["workload"], []).append(f)
    for w in ("roundtrip", "metrics", "forkjoin", "python"):
        check(by.get(w), f"no figures for {w}")
    for w in ("roundtrip", "metrics"):
        cases = {f["case"] for f in by[w]}
        check(len(cases) == 6, f"{w}: {len(cases)} cases, expected 6")
    waits = {(f["case"], f["peer"]) for f in by["roundtrip"]
             if f["metric"] == "wait_p99_ns"}
    check(len(waits) == 6 * len(WAIT_PEERS),
          f"roundtrip: {len(waits)} wait figures, expected "
          f"{6 * len(WAIT_PEERS)}")
    return by


def check_workloads(doc):
    w = doc.get("workloads")
    check(isinstance(w, dict), "no workloads")
    for name in ("roundtrip", "metrics", "forkjoin", "python"):
        check(w.get(name, {}).get("status") == "ok",
              f"{name}: status {w.get(name, {}).get('status')!r}, "
              f"{w.get(name, {}).get('why')}")
    check(w.get("server", {}).get("status") in ("ok", "skipped"),
          f"server: {w.get('server')}")
    rt = w["roundtrip"]["data"]
    peers = {r["peer"] for r in rt["results"]}
    check(ROUNDTRIP_PEERS <= peers, f"roundtrip peers: {sorted(peers)}")
    for r in rt["results"]:
        for s in r["jobs_per_s"]["samples"] + r["us_per_job"]["samples"]:
            check(positive(s), f"roundtrip sample {s!r} of {r['peer']}")
        if r["peer"] in WAIT_PEERS:
            check_wait(r)
    check_breakdown(rt)
    mt = w["metrics"]["data"]
    pairs = {(r["kind"], r["window"], r["peer"]) for r in mt["results"]}
    for kind, window, _ in list(pairs):
        for peer in ("tandem", "tandem_off"):
            check((kind, window, peer) in pairs,
                  f"metrics: no {peer} for {kind} W={window}")
    py = w["python"]["data"]
    kinds = {(r["peer"], r["kind"]) for r in py["results"]}
    for need in (("serial", "cpu"), ("threads", "cpu"), ("processes", "cpu"),
                 ("threads", "empty"), ("processes", "empty")):
        check(need in kinds, f"python: no {need}")


def check_wait(r):
    """A roundtrip result's wait: percentiles in order, buckets whose counts
    sum to its count."""
    where = f"roundtrip {r['peer']} {r['kind']} W={r['window']}: wait"
    h = r.get("wait")
    check(isinstance(h, dict) and positive(h.get("count")), f"{where}: none")
    ps = [h.get(k) for k in ("p50_ns", "p90_ns", "p99_ns", "p999_ns",
                             "max_ns")]
    check(all(positive(p, zero_ok=True) for p in ps), f"{where}: {ps}")
    check(ps == sorted(ps), f"{where}: percentiles out of order: {ps}")
    b = h.get("buckets")
    check(isinstance(b, list) and b, f"{where}: no buckets")
    check(sum(c for _, c in b) == h["count"], f"{where}: buckets do not sum "
          "to count")
    check([x for x, _ in b] == sorted({x for x, _ in b}),
          f"{where}: buckets not in order")


def check_breakdown(rt):
    """roundtrip --breakdown's parts: wait, run and lag with a value per
    round trip, then the rest (which may be a little below 0)."""
    bd = rt.get("breakdown")
    check(isinstance(bd, dict), "roundtrip: no breakdown: "
          f"{rt.get('breakdown_error')}")
    check(positive(bd.get("total_ns")),
          f"breakdown total: {bd.get('total_ns')!r}")
    parts = bd.get("parts", [])
    check([p.get("part") for p in parts] == ["wait", "run", "lag", "rest"],
          f"breakdown parts: {[p.get('part') for p in parts]}")
    for p in parts[:3]:
        check(positive(p.get("mean_ns"), zero_ok=True) and
              p.get("hist", {}).get("count") == bd.get("jobs"),
              f"breakdown {p['part']}: {p.get('mean_ns')!r}, "
              f"{p.get('hist', {}).get('count')!r} of {bd.get('jobs')!r}")


def check_doc(doc, plot_dir):
    check(doc.get("tool") == "tandem-bench", "tool")
    check(doc.get("mode") == "tiny", "mode")
    m = doc.get("machine", {})
    check(positive(m.get("cores")), "machine.cores")
    check(isinstance(m.get("cpu_model"), str) and m["cpu_model"],
          "machine.cpu_model")
    v = doc.get("versions", {})
    for key in ("tandem", "libuv", "python"):
        check(isinstance(v.get(key), str) and v[key], f"versions.{key}")
    if shutil.which("gcc"):
        check(isinstance(v.get("gcc"), str) and v["gcc"], "versions.gcc")
    check(doc.get("tandem_failed") == [], "tandem_failed")
    check(isinstance(doc.get("summary"), str) and len(doc["summary"]) > 80,
          "summary")
    check_workloads(doc)
    check_figures(doc)
    if plot_dir is not None:
        plots = doc.get("plots", [])
        names = {os.path.basename(p) for p in plots}
        for n in ("roundtrip_throughput.svg", "roundtrip_wait_cdf.svg",
                  "speedup_vs_workers.svg"):
            if n == "speedup_vs_workers.svg" and m.get("usable_cores", 1) < 2:
                continue
            check(n in names, f"plot {n} missing: {sorted(names)}")
        for p in plots:
            check(os.path.getsize(p) > 0, f"empty plot {p}")


def main(argv):
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    build = os.path.abspath(argv[0])
    with tempfile.TemporaryDirectory(prefix="tandem-smoke-") as tmp:
        out = os.path.join(tmp, "report.json")
        plot_dir = os.path.join(tmp, "plots") if shutil.which("gnuplot") \
            else None
        cmd = [sys.executable, os.path.join(HERE, "tandem-bench"), "--tiny",
               "--build-dir", build, "--json", out]
        if plot_dir:
            cmd += ["--plot", plot_dir]
        print("smoke_test: " + " ".join(cmd), flush=True)
        r = subprocess.run(cmd, timeout=600)
        try:
            check(r.returncode == 0, f"tandem-bench exited {r.returncode}")
            with open(out, encoding="utf-8") as f:
                doc = json.load(f)
            check_doc(doc, plot_dir)
        except (Failed, OSError, ValueError, KeyError, TypeError) as e:
            print(f"smoke_test: FAILED: {type(e).__name__}: {e}",
                  file=sys.stderr)
            return 1
    print(f"smoke_test: ok: {len(doc['figures'])} figures, every one "
          "positive")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
