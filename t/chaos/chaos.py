"""chaos: helpers shared by the reliability tests and benchmarks (t/chaos,
t/bench/latency.py): an incremental, crash-tolerant reader of findings.jsonl,
a pgbench load that survives server restarts, a retained-WAL poller, slot
catch-up, and the comparison of rows written with findings delivered.

The supervisor, pgsense.ini and status.json helpers are t/e2e/e2e.py's
(imported here, not copied); clusters are t/pg/pgharness.py's."""

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
for sub in ("../e2e", "../pg", "../worker"):
    p = os.path.normpath(os.path.join(HERE, sub))
    if p not in sys.path:
        sys.path.insert(0, p)

import e2e  # noqa: E402,F401  (re-exported for the tests)
from e2e import Supervisor, db_entry, write_ini, worker_pids  # noqa: E402,F401
from pgharness import Cluster, HarnessError, client_bin  # noqa: E402,F401
from wtest import Runner  # noqa: E402,F401

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"


def log(msg):
    print(msg, flush=True)


def parse_ts(s):
    """RFC 3339 UTC with microseconds (2026-11-26T10:00:00.123456Z) -> epoch seconds."""
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


class FindingsTail:
    """Reads findings.jsonl incrementally. Tolerant: a line that is not JSON
    (a cut line after a crash) is counted in .corrupt, never raised.
    on_line(obj, arrival) is called for every complete line. With defer=True
    the reader only stamps and keeps the raw lines (.count still grows) and
    parses them in stop(): a latency benchmark must not let the reader's own
    JSON parsing delay the next read and so inflate the figures."""

    def __init__(self, path, on_line=None, defer=False):
        self.path = path
        self.on_line = on_line
        self.defer = defer
        self.deferred = []
        self.pos = 0
        self.rest = b""
        self.count = 0
        self.corrupt = []
        self.items = []
        self.keep = on_line is None
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def poll(self):
        """Read what was appended since the last call; returns the number of new lines."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return 0
        if not data:
            return 0
        now = time.time()
        self.pos += len(data)
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        if self.defer:
            with self.lock:
                self.deferred.append((now, lines))
                self.count += len(lines)
            return len(lines)
        return self._parse(lines, now)

    def _parse(self, lines, now):
        n = 0
        for raw in lines:
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                with self.lock:
                    self.corrupt.append(raw[:200])
                continue
            n += 1
            with self.lock:
                self.count += 1
                if self.keep:
                    self.items.append(obj)
            if self.on_line:
                self.on_line(obj, now)
        return n

    def start(self, interval=0.001):
        def run():
            while not self._stop.is_set():
                self.poll()
                time.sleep(interval)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.poll()
        if self.defer:
            with self.lock:
                batches, self.deferred, self.count = self.deferred, [], 0
            for now, lines in batches:
                self._parse(lines, now)

    def snapshot(self):
        with self.lock:
            return list(self.items)


class WalPoller:
    """Every second: the largest WAL retained by a pgsense slot (current LSN -
    restart LSN) on each cluster; the maximum seen is kept. Errors (a server
    restarting) are skipped."""

    SQL = ("SELECT coalesce(max(pg_current_wal_lsn() - restart_lsn), 0)::bigint, "
           "coalesce(max(pg_current_wal_lsn() - confirmed_flush_lsn), 0)::bigint "
           "FROM pg_replication_slots WHERE slot_name LIKE 'pgsense\\_%'")

    def __init__(self, clusters, interval=1.0):
        self.clusters = clusters
        self.interval = interval
        self.max_retained = 0
        self.max_lag = 0
        self.samples = 0
        self.last = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for c in self.clusters:
                try:
                    out = c.psql(self.SQL, timeout=10)
                    ret, lag = (int(x) for x in out.split("|"))
                except Exception:  # noqa: BLE001 - a restarting server
                    continue
                self.samples += 1
                self.last[c.name] = ret
                self.max_retained = max(self.max_retained, ret)
                self.max_lag = max(self.max_lag, lag)
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(15)


class PgbenchLoad:
    """pgbench against one database, restarted whenever it ends early
    (its clients abort when the server restarts) until stop(). scripts:
    list of (path, weight); set_scripts() swaps them (pgbench is restarted)."""

    def __init__(self, pg, db, scripts, rate, clients=2, threads=1, logdir=None, name="load"):
        self.pg, self.db = pg, db
        self.scripts = list(scripts)
        self.rate, self.clients, self.threads = rate, clients, threads
        self.logdir = logdir
        self.name = name
        self.runs = 0
        self.proc = None
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cmd(self):
        cmd = [PGBENCH, "-n", "-c", str(self.clients), "-j", str(self.threads), "-T", "100000",
               "--max-tries=5"]
        if self.rate:
            cmd += ["-R", str(self.rate)]
        for path, weight in self.scripts:
            cmd += ["-f", "%s@%d" % (path, weight)]
        return cmd

    def _run(self):
        while not self._stop.is_set():
            with self.lock:
                if self._stop.is_set():
                    break
                out = open(os.path.join(self.logdir, "%s.pgbench.log" % self.name), "ab") if self.logdir \
                    else subprocess.DEVNULL
                self.proc = subprocess.Popen(self._cmd(), stdout=out, stderr=subprocess.STDOUT,
                                             env=self.pg.env(self.db))
                self.runs += 1
            self.proc.wait()
            if out is not subprocess.DEVNULL:
                out.close()
            self._stop.wait(0.5)

    def start(self):
        self._thread.start()
        return self

    def _kill_current(self):
        p = self.proc
        if p and p.poll() is None:
            p.terminate()  # pgbench: in-flight transactions roll back
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def set_scripts(self, scripts):
        with self.lock:
            self.scripts = list(scripts)
            self._kill_current()

    def stop(self):
        self._stop.set()
        with self.lock:
            self._kill_current()
        self._thread.join(20)


def slot_caught_up(pg, db, target):
    """True when every pgsense slot of database db confirmed target (an LSN text)."""
    out = pg.psql("SELECT count(*) FILTER (WHERE confirmed_flush_lsn >= '%s'::pg_lsn), count(*) "
                  "FROM pg_replication_slots WHERE slot_name LIKE 'pgsense\\_%%' AND database = '%s'"
                  % (target, db), timeout=10)
    ok, n = (int(x) for x in out.split("|"))
    return n > 0 and ok == n


def wait_caught_up(targets, tail, timeout, quiet_s=3.0):
    """targets: [(pg, db, lsn)]. Waits until every slot confirmed its target
    LSN, then until findings stop growing for quiet_s. Returns (ok, seconds)."""
    t0 = time.time()
    pending = list(targets)
    while pending and time.time() - t0 < timeout:
        still = []
        for pg, db, lsn in pending:
            try:
                if not slot_caught_up(pg, db, lsn):
                    still.append((pg, db, lsn))
            except Exception:  # noqa: BLE001
                still.append((pg, db, lsn))
        pending = still
        if pending:
            time.sleep(0.5)
    last, since = tail.count, time.time()
    while time.time() - t0 < timeout + quiet_s and time.time() - since < quiet_s:
        tail.poll()
        if tail.count != last:
            last, since = tail.count, time.time()
        time.sleep(0.2)
    return not pending, time.time() - t0


def finding_key(f):
    pk = f.get("primary_keys") or []
    return (f.get("worker"), f.get("table_name"), pk[0][1] if pk else None, f.get("column_name"), f.get("rule_id"))


def compare(expected, items):
    """expected: set of (worker, table, pk-text, column, rule). items: findings.
    Returns a dict of figures: missing, missing_stream, duplicates (the same
    finding delivered again: same key, source and lsn), repeats (more than one
    finding for a key: rescans, updates), unexpected (keys not expected)."""
    seen, seen_stream, per_delivery = {}, set(), {}
    for f in items:
        k = finding_key(f)
        seen[k] = seen.get(k, 0) + 1
        if f.get("source") == "stream":
            seen_stream.add(k)
        d = k + (f.get("source"), f.get("lsn"))
        per_delivery[d] = per_delivery.get(d, 0) + 1
    missing = sorted(expected - set(seen))
    missing_stream = sorted(expected - seen_stream)
    return {
        "missing": missing,
        "missing_stream": missing_stream,
        "duplicates": sum(n - 1 for n in per_delivery.values()),
        "repeats": sum(n - 1 for n in seen.values()),
        "unexpected": sorted(k for k in seen if k not in expected),
    }
