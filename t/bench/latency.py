#!/usr/bin/python3
"""Latency benchmark (issue 6): single-row INSERT transactions paced by
pgbench --rate at 1,000 and 10,000 rows/s, every row sensitive, through the
real supervisor and worker into findings.jsonl. A reader thread polls
findings.jsonl every 1 ms and stamps each line when it becomes readable;
latency = arrival - commit_time (the transaction's commit time). Prints
p50, p99 and max per rate, against the targets (p99 < 50 ms at 1,000 rows/s,
< 250 ms at 10,000 rows/s). A benchmark, not a test: exit 0 unless the run
itself failed (missing findings), whatever the figures.

    cd BUILD && srcdir=SRC SRC/t/bench/latency.py [--seconds 20] [--rates 1000,10000] [--pg 17]

The sustained rate pgbench reached is printed too: on a small machine the
10,000 rows/s target may be out of reach of the server itself."""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "chaos"))

from chaos import (PGBENCH, Cluster, FindingsTail, Supervisor, db_entry, log, parse_ts, percentile,  # noqa
                   worker_pids, write_ini)


def cpu_s(pid):
    """utime + stime of a process, in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0

TARGETS = {1000: 50.0, 10000: 250.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=20, help="load duration per rate (default 20)")
    ap.add_argument("--rates", default="1000,10000")
    ap.add_argument("--pg", type=int, default=17, choices=(15, 17))
    ap.add_argument("--nice-load", type=int, default=0,
                    help="run pgbench under nice -n N, so that a saturated machine favours the pipeline")
    ap.add_argument("--no-log-sink", action="store_true",
                    help="[alerts.log] enabled = false (by default every finding is also a supervisor.log line)")
    args = ap.parse_args()
    rates = [int(x) for x in args.rates.split(",")]
    results = []
    failed = False
    with tempfile.TemporaryDirectory() as top, \
            Cluster(version=args.pg, name="latency") as pg:
        for rate in rates:
            d = os.path.join(top, str(rate))
            os.mkdir(d)
            db = "lat%d" % rate
            pg.create_db(db)
            pg.psql("CREATE TABLE t (id bigserial PRIMARY KEY, email text);"
                    "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert');", db=db)
            ini = write_ini(d, [db_entry(db, pg, db)], extra="[alerts]\ndedup_window_seconds = 0\n" +
                            ("[alerts.log]\nenabled = false\n" if args.no_log_sink else ""))
            lat = []
            stage = []  # (worker: detected_at - commit_time, supervisor: arrival - detected_at)
            tail = FindingsTail(os.path.join(d, "findings.jsonl"),
                                on_line=lambda f, now: lat.append(now - parse_ts(f["commit_time"])) or
                                stage.append((parse_ts(f["detected_at"]) - parse_ts(f["commit_time"]),
                                              now - parse_ts(f["detected_at"]))), defer=True)
            sup = Supervisor(d, ini)
            try:
                sup.wait_state(db, "streaming", timeout=60)
                tail.start(0.001)
                script = os.path.join(d, "one.sql")
                with open(script, "w") as f:
                    f.write("INSERT INTO t (email) SELECT 'l' || nextval('t_id_seq') || '@lat.test';\n")
                clients = max(2, min(8, rate // 1000))
                walsender = int(pg.scalar("SELECT pid FROM pg_stat_replication"))
                procs = {"supervisor": sup.proc.pid, "worker": worker_pids(sup.proc.pid)[0], "walsender": walsender}
                cpu0 = {k: cpu_s(v) for k, v in procs.items()}
                t0 = time.time()
                nice = ["nice", "-n", str(args.nice_load)] if args.nice_load else []
                out = subprocess.run(nice + [PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
                                             "-R", str(rate), "-T", str(args.seconds), "-f", script],
                                     env=pg.env(db), capture_output=True, text=True, timeout=args.seconds + 60)
                load_s = time.time() - t0
                if out.returncode != 0:
                    log("pgbench failed: %s%s" % (out.stdout[-2000:], out.stderr[-2000:]))
                    failed = True
                m = re.search(r"tps = ([\d.]+)", out.stdout)
                lagm = re.search(r"rate limit schedule lag: avg ([\d.]+) \(max ([\d.]+)\) ms", out.stdout)
                rows = int(pg.scalar("SELECT count(*) FROM t", db=db))
                deadline = time.time() + 60
                while time.time() < deadline and tail.count < rows:
                    time.sleep(0.05)
                t_last = time.time()
                tail.stop()
                cpu = {k: cpu_s(v) - cpu0[k] for k, v in procs.items()}
                log("rate %5d rows/s: last finding %.1fs after pgbench ended; CPU s during the run: %s" % (
                    rate, t_last - t0 - load_s, ", ".join("%s %.1f" % kv for kv in cpu.items())))
                ms = [x * 1000.0 for x in lat]
                res = {"rate": rate, "rows": rows, "findings": len(lat), "tps": float(m.group(1)) if m else 0.0,
                       "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms) if ms else float("nan"),
                       "sched_lag": lagm.group(1) + "/" + lagm.group(2) if lagm else "?", "load_s": load_s}
                results.append(res)
                log("rate %5d rows/s: %d rows (pgbench %.0f tps, %d clients, schedule lag avg/max %s ms), %d findings; "
                    "latency p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < %.0f ms: %s)"
                    % (rate, rows, res["tps"], clients, res["sched_lag"], len(lat), res["p50"], res["p99"],
                       res["max"], TARGETS.get(rate, float("nan")),
                       ("met" if res["p99"] < TARGETS[rate] else "MISSED") if rate in TARGETS else "-"))
                wk = [x[0] * 1000.0 for x in stage]
                sv = [x[1] * 1000.0 for x in stage]
                log("  by stage: commit -> detected_at (server + walsender + worker) p50 %.1f p99 %.1f ms; "
                    "detected_at -> readable in findings.jsonl (frames + supervisor + write) p50 %.1f p99 %.1f ms"
                    % (percentile(wk, 50), percentile(wk, 99), percentile(sv, 50), percentile(sv, 99)))
                if len(lat) < rows:
                    log("  %d findings missing after 60 s" % (rows - len(lat)))
                    failed = True
            finally:
                sup.stop()
    log("")
    log("%-8s %8s %8s %10s %10s %10s %s" % ("rows/s", "rows", "tps", "p50 ms", "p99 ms", "max ms", "target"))
    for r in results:
        log("%-8d %8d %8.0f %10.1f %10.1f %10.1f p99 < %.0f ms %s" % (
            r["rate"], r["rows"], r["tps"], r["p50"], r["p99"], r["max"], TARGETS.get(r["rate"], float("nan")),
            ("met" if r["p99"] < TARGETS[r["rate"]] else "MISSED") if r["rate"] in TARGETS else "-"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
