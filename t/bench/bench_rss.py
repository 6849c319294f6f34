#!/usr/bin/python3
"""bench_rss: the worker's peak memory (VmHWM) while streaming about 1 GB
of ordinary rows, and with one very large value (issue: the worker).

    t/bench/bench_rss.py [--gb 1.0] [--big-mb 50] [--build DIR]

Targets: under 32 MB for ordinary rows; under 32 MB plus twice the largest
value otherwise. Prints the figures."""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
import bench_worker as bw  # noqa: E402
from pgharness import Cluster  # noqa: E402

ROW_SQL = """
INSERT INTO docs (id, body)
SELECT g, repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit, order ' || g || '. ', 12)
          || CASE WHEN g %% 50 = 0 THEN ' contact c' || g || '@corp.test' ELSE '' END
FROM generate_series(%d, %d) g
"""


def stream(pg, build, slot, relid, target, sample_every=0.05):
    d = bw.DriverRun(build, pg, "rss", slot, extra=["--store-ready", "%s:public:docs" % relid])
    wpid, hwm = None, 0
    t0 = time.time()
    while d.max_end < target:
        if wpid is None:
            wpid = bw.worker_child(d.p.pid)
        if d.p.poll() is not None:
            raise SystemExit("the driver ended early")
        time.sleep(sample_every)
    if wpid:
        _, hwm = bw.proc_cpu_and_hwm(wpid)
    secs = time.time() - t0
    d.stop()
    return hwm / 1024.0, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--big-mb", type=int, default=50)
    ap.add_argument("--version", type=int, default=17)
    ap.add_argument("--build", default=os.getcwd())
    a = ap.parse_args()
    with Cluster(version=a.version, name="rss", settings={"max_wal_size": "8GB"}) as pg:
        pg.create_db("rss")
        pg.psql("CREATE TABLE docs (id bigint PRIMARY KEY, body text);"
                "CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="rss")
        d = bw.DriverRun(a.build, pg, "rss", "pgsense_rss")
        while d.tables_done < 1:
            time.sleep(0.05)
        time.sleep(1.5)
        d.stop()
        relid = pg.scalar("SELECT 'docs'::regclass::oid", db="rss")
        start = pg.current_lsn()
        rows = int(a.gb * 1e9 / 900)
        for lo in range(1, rows + 1, 20000):
            pg.psql(ROW_SQL % (lo, min(rows, lo + 19999)), db="rss")
        end = pg.current_lsn()
        wal = bw.lsn_int(end) - bw.lsn_int(start)
        hwm, secs = stream(pg, a.build, "pgsense_rss", relid, bw.lsn_int(end))
        print("ordinary rows: %d rows, %.2f GB of WAL streamed in %.1f s: worker VmHWM %.1f MB (target < 32 MB)"
              % (rows, wal / 1e9, secs, hwm))
        big = a.big_mb * 1024 * 1024
        pg.psql("INSERT INTO docs VALUES (0, repeat('x', %d) || ' ssn 078-05-1120')" % big, db="rss")
        end = pg.current_lsn()
        hwm2, secs = stream(pg, a.build, "pgsense_rss", relid, bw.lsn_int(end))
        print("one %d MB value: worker VmHWM %.1f MB (target < %.0f MB = 32 MB + twice the value)"
              % (a.big_mb, hwm2, 32 + 2 * big / 1048576.0))


if __name__ == "__main__":
    main()
