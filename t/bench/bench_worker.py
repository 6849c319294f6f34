#!/usr/bin/python3
"""bench_worker: end-to-end worker throughput against pg_recvlogical and raw
COPY on the same data, same server, same transport (unix socket).

    t/bench/bench_worker.py [--rows N] [--version 17] [--build DIR]

(a) a backlog of N rows (about 10% with an email or a card number inside
    free text) written while no consumer runs, drained by pg_recvlogical
    (pgoutput, its own slot, to /dev/null) and then by pgsense-worker (under
    t/worker/driver, every unit acknowledged);
(b) the initial snapshot of the same N-row table against
    `COPY ... TO STDOUT` through psql to /dev/null.
Prints rows/s, the ratios, CPU seconds per million rows and peak RSS
(VmHWM). Figures are ratios measured in the same run: the machine is shared.
"""

import argparse
import os
import resource
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
from pgharness import Cluster, CLIENT_BIN  # noqa: E402

ROWS_SQL = """
INSERT INTO events (id, customer, note, created)
SELECT g,
       'customer ' || (g %% 9973) || ' ' || md5(g::text),
       CASE WHEN g %% 20 = 0 THEN 'please update my contact to user' || g || '@example-mail.net, thanks'
            WHEN g %% 20 = 1 THEN 'paid with card 4012 8888 8888 1881 on the phone, order ' || g
            ELSE 'order ' || g || ' shipped to warehouse ' || (g %% 17) || ', tracking ' || md5((g * 7)::text)
       END,
       now()
FROM generate_series(%d, %d) g
"""


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu_and_hwm(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


def worker_child(driver_pid):
    out = subprocess.run(["pgrep", "-P", str(driver_pid)], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


class DriverRun:
    """t/worker/driver with the worker; counts units and waits for an end LSN."""

    def __init__(self, build, pg, db, slot, extra=()):
        args = [os.path.join(build, "t/worker/driver"), "--worker", os.path.join(build, "pgsense-worker"),
                "--rules", os.path.join(HERE, "..", "..", "conf", "rules.yaml"), "--host", pg.host,
                "--port", str(pg.port), "--dbname", db, "--user", "postgres"] + list(extra)
        env = dict(os.environ, DRIVER_SLOT=slot)
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.max_end = 0
        self.findings = 0
        self.tables_done = 0
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            if line.startswith(b'{"seq"'):
                self.findings += 1
            elif line.startswith(b'{"txn_end"'):
                end = int(line.split(b'"end_lsn":')[1].split(b",")[0])
                self.max_end = max(self.max_end, end)
            elif line.startswith(b'{"table_done"'):
                self.tables_done += 1

    def stop(self):
        self.p.terminate()
        self.p.wait(60)


def lsn_int(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--version", type=int, default=17)
    ap.add_argument("--build", default=os.getcwd())
    a = ap.parse_args()
    n = a.rows
    settings = {"max_wal_size": "4GB", "shared_buffers": "256MB", "wal_sender_timeout": "60s"}
    with Cluster(version=a.version, name="bench", settings=settings) as pg:
        pg.create_db("bench")
        pg.psql("CREATE TABLE events (id bigint PRIMARY KEY, customer text, note text, created timestamptz);"
                "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert, update')", db="bench")
        # The worker's slot (and its empty snapshot), then pg_recvlogical's.
        d = DriverRun(a.build, pg, "bench", "pgsense_bench")
        while d.tables_done < 1:
            time.sleep(0.05)
        time.sleep(1.5)
        relid = pg.scalar("SELECT 'events'::regclass::oid", db="bench")
        d.stop()
        recv = os.path.join(CLIENT_BIN, "pg_recvlogical")
        dsn = pg.dsn("bench")
        subprocess.run([recv, "-d", dsn, "--slot", "bench_recv", "--create-slot", "-P", "pgoutput"], check=True)

        t0 = time.time()
        step = 10000
        for lo in range(1, n + 1, step):
            pg.psql(ROWS_SQL % (lo, min(n, lo + step - 1)), db="bench")
        endpos = pg.current_lsn()
        wal = pg.scalar("SELECT pg_wal_lsn_diff('%s', confirmed_flush_lsn) FROM pg_replication_slots "
                        "WHERE slot_name = 'bench_recv'" % endpos, db="bench")
        print("backlog: %d rows, %.0f MB of WAL, written in %.1f s" % (n, float(wal) / 1e6, time.time() - t0))
        sys.stdout.flush()

        # (a) pg_recvlogical
        c0 = children_cpu()
        t0 = time.time()
        subprocess.run([recv, "-d", dsn, "--slot", "bench_recv", "--start", "-o", "proto_version=1",
                        "-o", "publication_names=pgsense_pub", "-f", "/dev/null", "-E", endpos, "-s", "1"],
                       check=True)
        recv_s = time.time() - t0
        recv_cpu = children_cpu() - c0

        # (b) the worker
        t0 = time.time()
        d = DriverRun(a.build, pg, "bench", "pgsense_bench", extra=["--store-ready", "%s:public:events" % relid])
        wpid = None
        target = lsn_int(endpos)
        cpu = hwm = 0
        while d.max_end < target:
            if wpid is None:
                wpid = worker_child(d.p.pid)
            if wpid:
                try:
                    cpu, hwm = proc_cpu_and_hwm(wpid)
                except OSError:
                    pass
            if d.p.poll() is not None:
                raise SystemExit("the driver ended early")
            time.sleep(0.01)
        worker_s = time.time() - t0
        cpu, hwm = proc_cpu_and_hwm(wpid)
        nfind = d.findings
        d.stop()

        # (c) snapshot of the same table against raw COPY
        psql = os.path.join(CLIENT_BIN, "psql")
        t0 = time.time()
        with open("/dev/null", "wb") as devnull:
            subprocess.run([psql, "-X", "-q", "-d", dsn, "-c", "COPY events TO STDOUT"], stdout=devnull, check=True)
        copy_s = time.time() - t0
        t0 = time.time()
        d = DriverRun(a.build, pg, "bench", "pgsense_bench_snap")
        swpid = None
        shwm = 0
        while d.tables_done < 1:
            if swpid is None:
                swpid = worker_child(d.p.pid)
            if d.p.poll() is not None:
                raise SystemExit("the driver ended early")
            time.sleep(0.01)
        snap_s = time.time() - t0
        if swpid:
            _, shwm = proc_cpu_and_hwm(swpid)
        d.stop()

    print("stream  pg_recvlogical : %9.0f rows/s  (%.2f s, %.2f CPU s per M rows)" %
          (n / recv_s, recv_s, recv_cpu / n * 1e6))
    print("stream  pgsense-worker : %9.0f rows/s  (%.2f s, %.2f CPU s per M rows, %d findings, VmHWM %.1f MB)" %
          (n / worker_s, worker_s, cpu / n * 1e6, nfind, hwm / 1024))
    print("stream  ratio worker/recvlogical: %.2fx (target >= 0.9x); CPU ratio %.2fx" %
          (recv_s / worker_s, cpu / max(recv_cpu, 1e-9)))
    print("snapshot COPY to /dev/null: %9.0f rows/s (%.2f s)" % (n / copy_s, copy_s))
    print("snapshot pgsense-worker   : %9.0f rows/s (%.2f s, VmHWM %.1f MB)" % (n / snap_s, snap_s, shwm / 1024))
    print("snapshot ratio worker/COPY: %.2fx (target >= 0.5x)" % (copy_s / snap_s))


if __name__ == "__main__":
    main()
