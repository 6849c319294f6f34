#!/usr/bin/python3
"""Chaos soak (issue 6): a steady pgbench write load on two databases, one on
PostgreSQL 15 and one on PostgreSQL 17 (both supported majors, each with its
own walsender and restart), while faults are injected at random moments
(seeded RNG, the seed is printed): kill -9 of a worker, kill -9 of the
supervisor and a restart, a PostgreSQL restart, SIGHUP with an unchanged and
with a changed pgsense.ini, ALTER TABLE ADD COLUMN on the written table (later
rows fill it) and a burst on an unpublished table. At the end the load stops,
the pipeline catches up (every slot confirms the LSN current at the stop,
then findings.jsonl stays quiet for 3 s), and every sensitive row read back
from the databases is matched with findings.jsonl on database + table +
primary key + column + rule.

    cd BUILD && srcdir=SRC SRC/t/chaos/soak.py [--minutes 3] [--seed N] [--rate TPS]

Dedup is off by default (--dedup-window 0): with store = memory a supervisor
restart snapshots every table again, and with dedup on a stream finding that
was redelivered after the restart may be suppressed by the snapshot's finding
of the same value, which would hide a loss in the stream. With dedup off the
stream is checked strictly: every sensitive row must have a *stream* finding.
Exit status: 0 when nothing is missing, 1 otherwise."""

import argparse
import os
import random
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos import (Cluster, FindingsTail, PgbenchLoad, Runner, Supervisor, WalPoller, compare,  # noqa: E402
                   db_entry, log, wait_caught_up, worker_pids, write_ini)

DB = "soak"
SCHEMA = """
CREATE TABLE soak (id bigserial PRIMARY KEY, email text, note text, n int NOT NULL DEFAULT 0);
CREATE TABLE noise (id bigserial PRIMARY KEY, v text);
CREATE PUBLICATION pgsense_pub FOR TABLE soak WITH (publish = 'insert, update');
"""

# 30% of the rows (id % 10 < 3) carry a unique email; after the ALTER, 10% more
# (id % 10 = 5) carry one in the new column. Updates put a unique email in note.
def _insert(n, extra):
    cols = "id, email, note" + (", extra" if extra else "")
    vals = ("i, CASE WHEN i % 10 < 3 THEN 'c' || i || '@soak.test' ELSE 'plain' END, 'filler'"
            + (", CASE WHEN i % 10 = 5 THEN 'x' || i || '@soak.test' ELSE 'more' END" if extra else ""))
    return ("INSERT INTO soak (%s) SELECT %s FROM (SELECT nextval('soak_id_seq') AS i "
            "FROM generate_series(1, %s)) s;\n" % (cols, vals, n))


def scripts(d, extra):
    tag = "x" if extra else "p"
    files = {
        "ins": "\\set n random_exponential(1, 1000, 4.0)\n" + _insert(":n", extra),
        "one": _insert("1", extra),
        "mix": ("\\set n random_exponential(1, 1000, 4.0)\n\\set u random(0, 20)\nBEGIN;\n" + _insert(":n", extra)
                + "SELECT last_value AS maxid FROM soak_id_seq \\gset\n\\set lo random(1, :maxid)\n"
                "UPDATE soak SET note = 'u' || id || '@soak.test', n = n + 1 WHERE id BETWEEN :lo AND :lo + :u;\n"
                "END;\n"),
    }
    out = []
    for name, weight in (("ins", 6), ("mix", 3), ("one", 1)):
        p = os.path.join(d, "%s-%s.sql" % (name, tag))
        with open(p, "w") as f:
            f.write(files[name])
        out.append((p, weight))
    return out


class Soak:
    def __init__(self, args, d, pg15, pg17):
        self.args, self.dir = args, d
        self.pgs = {"soak15": pg15, "soak17": pg17}
        self.rng = random.Random(args.seed)
        self.sup = None
        self.hup_n = 0
        self.scan_toggle = False
        self.altered = set()
        self.counts = {"worker kill -9": 0, "supervisor kill -9": 0, "postgres restart": 0, "SIGHUP unchanged": 0,
                       "SIGHUP changed": 0, "ALTER TABLE": 0, "unpublished burst": 0}
        self.worker_restarts = 0
        self.t0 = time.time()

    def ini(self):
        extra = "[alerts]\ndedup_window_seconds = %d\n" % self.args.dedup_window
        if self.scan_toggle:
            extra += "[scan]\nexclude_tables = tmp_*, scratch_*\n"
        extra += "".join("; reload %d\n" % i for i in range(self.hup_n))
        return write_ini(self.dir, [db_entry(n, pg, DB) for n, pg in sorted(self.pgs.items())], extra=extra)

    def say(self, msg):
        log("  t=%+6.1fs %s" % (time.time() - self.t0, msg))

    def restarts_now(self):
        try:
            return sum(w["restarts"] for w in self.sup.status()["workers"])
        except Exception:  # noqa: BLE001
            return 0

    # -- faults

    def ev_kill_worker(self):
        pids = worker_pids(self.sup.proc.pid)
        if not pids:
            self.say("kill -9 worker: no worker running right now, skipped")
            return
        pid = self.rng.choice(pids)
        os.kill(pid, signal.SIGKILL)
        self.say("kill -9 worker pid %d" % pid)

    def ev_kill_supervisor(self):
        self.worker_restarts += self.restarts_now()
        pid = self.sup.proc.pid
        self.sup.kill9()
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.sup = Supervisor(self.dir, self.ini())
        self.say("kill -9 supervisor pid %d, restarted as %d" % (pid, self.sup.proc.pid))

    def ev_pg_restart(self):
        name = self.rng.choice(sorted(self.pgs))
        t = time.time()
        self.pgs[name].restart()
        self.say("PostgreSQL %d (%s) restarted in %.1fs" % (self.pgs[name].version, name, time.time() - t))

    def ev_hup_same(self):
        self.hup_n += 1
        self.ini()
        self.sup.signal(signal.SIGHUP)
        self.say("SIGHUP, pgsense.ini unchanged but for a comment")

    def ev_hup_changed(self):
        self.scan_toggle = not self.scan_toggle
        self.ini()
        self.sup.signal(signal.SIGHUP)
        self.say("SIGHUP, [scan] exclude_tables %s" % ("added" if self.scan_toggle else "removed"))

    def ev_alter(self):
        todo = [n for n in sorted(self.pgs) if n not in self.altered]
        if not todo:
            self.say("ALTER TABLE: both tables already altered, skipped")
            return
        name = self.rng.choice(todo)
        self.pgs[name].psql("ALTER TABLE soak ADD COLUMN extra text", db=DB, timeout=60)
        self.altered.add(name)
        self.loads[name].set_scripts(scripts(self.dir, True))
        self.say("ALTER TABLE soak ADD COLUMN extra on %s; its load now fills it" % name)

    def ev_burst(self):
        name = self.rng.choice(sorted(self.pgs))
        n = self.rng.randint(50000, 200000)
        self.pgs[name].psql("INSERT INTO noise (v) SELECT 'n' || g || '@noise.test' FROM generate_series(1, %d) g"
                            % n, db=DB, timeout=120)
        self.say("burst of %d rows on the unpublished table noise on %s" % (n, name))

    EVENTS = [("worker kill -9", "ev_kill_worker"), ("supervisor kill -9", "ev_kill_supervisor"),
              ("postgres restart", "ev_pg_restart"), ("SIGHUP unchanged", "ev_hup_same"),
              ("SIGHUP changed", "ev_hup_changed"), ("ALTER TABLE", "ev_alter"),
              ("unpublished burst", "ev_burst")]

    def schedule(self, duration):
        """Each kind once in random order, then random kinds, at random moments
        between 10 s and duration - 15 s."""
        n = max(len(self.EVENTS), int(duration / 60.0 * 4))
        kinds = list(self.EVENTS)
        self.rng.shuffle(kinds)
        weighted = [e for e in self.EVENTS if e[0] not in ("ALTER TABLE",)]
        while len(kinds) < n:
            kinds.append(self.rng.choice(weighted))
        lo, hi = 10.0, max(20.0, duration - 15.0)
        times = sorted(self.rng.uniform(lo, hi) for _ in kinds)
        return list(zip(times, kinds))

    # -- the run

    def run(self, r):
        args = self.args
        for name, pg in self.pgs.items():
            pg.create_db(DB)
            pg.psql(SCHEMA, db=DB)
        self.sup = Supervisor(self.dir, self.ini())
        for name in self.pgs:
            self.sup.wait_state(name, "streaming", timeout=60)
        tail = FindingsTail(os.path.join(self.dir, "findings.jsonl")).start(interval=0.2)
        wal = WalPoller(list(self.pgs.values())).start()
        base = scripts(self.dir, False)
        self.loads = {n: PgbenchLoad(pg, DB, base, args.rate, logdir=self.dir, name=n).start()
                      for n, pg in self.pgs.items()}
        duration = args.minutes * 60.0
        self.t0 = time.time()
        plan = self.schedule(duration)
        log("soak: %.1f min, seed %d, %d faults planned, load %.1f tps per database (1-1000 rows each)"
            % (args.minutes, args.seed, len(plan), args.rate))
        for at, (kind, meth) in plan:
            delay = self.t0 + at - time.time()
            if delay > 0:
                time.sleep(delay)
            try:
                getattr(self, meth)()
                self.counts[kind] += 1
            except Exception as e:  # noqa: BLE001 - a fault that could not be injected is reported, not fatal
                self.say("%s FAILED to inject: %s" % (kind, e))
        rest = self.t0 + duration - time.time()
        if rest > 0:
            time.sleep(rest)
        for load in self.loads.values():
            load.stop()
        t_stop = time.time()
        targets = [(pg, DB, pg.current_lsn()) for pg in self.pgs.values()]
        caught, secs = wait_caught_up(targets, tail, timeout=args.catchup)
        log("soak: load stopped; pipeline %s after %.1fs" % ("caught up" if caught else "NOT caught up", secs))
        tail.stop()
        wal.stop()
        st = self.sup.status()
        self.worker_restarts += sum(w["restarts"] for w in st["workers"])
        rc = self.sup.stop()

        # read back every row and every sensitive value
        expected, rows, sensitive_rows = set(), 0, 0
        for name, pg in self.pgs.items():
            rows += int(pg.scalar("SELECT count(*) FROM soak", db=DB))
            cols = ["email", "note"] + (["extra"] if name in self.altered else [])
            for col in cols:
                ids = pg.query("SELECT id FROM soak WHERE %s LIKE '%%@soak.test'" % col, db=DB)
                expected |= {(name, "soak", i[0], col, "email-address") for i in ids}
            sensitive_rows += int(pg.scalar("SELECT count(*) FROM soak WHERE email LIKE '%%@soak.test' OR note LIKE "
                                            "'%%@soak.test'%s" % (" OR extra LIKE '%@soak.test'"
                                                                  if name in self.altered else ""), db=DB))
        items = tail.snapshot()
        c = compare(expected, items)
        noise = [k for k in c["unexpected"] if k[1] == "noise"]
        by_source = {}
        for f in items:
            by_source[f.get("source")] = by_source.get(f.get("source"), 0) + 1
        log("")
        log("=== soak report (seed %d, %.1f min, dedup_window_seconds %d) ===" % (args.seed, args.minutes,
                                                                                 args.dedup_window))
        log("rows written            %d" % rows)
        log("sensitive rows          %d (%d sensitive values)" % (sensitive_rows, len(expected)))
        log("findings                %d (%s)" % (len(items), ", ".join("%s %d" % kv for kv in sorted(by_source.items()))))
        log("missing                 %d" % len(c["missing"]))
        log("missing from the stream %d" % len(c["missing_stream"]))
        log("duplicates delivered    %d (same finding again: same key, source and LSN)" % c["duplicates"])
        log("repeat findings         %d (same key again: snapshot rescans, updates re-sending a row)" % c["repeats"])
        log("unexpected findings     %d (%d on the unpublished table)" % (len(c["unexpected"]), len(noise)))
        log("corrupt jsonl lines     %d" % len(tail.corrupt))
        log("faults injected         %s" % ", ".join("%s %d" % kv for kv in self.counts.items()))
        log("worker restarts         %d (as counted by the supervisors)" % self.worker_restarts)
        log("largest retained WAL    %d bytes (%.1f MB); largest flush lag %d bytes"
            % (wal.max_retained, wal.max_retained / 1048576.0, wal.max_lag))
        log("catch-up                %.1f s after the load stopped" % (time.time() - t_stop))
        for name, pg in self.pgs.items():
            # restarts terminate sessions; a kill -9 of a worker or the supervisor in the middle of a
            # snapshot leaves the backend of a running COPY writing to a dead socket
            bad = pg.unexpected_log_lines(expected=[r"FATAL:  terminating connection due to administrator command",
                                                    r"FATAL:  connection to client lost"])
            log("server log %s          %d unexpected FATAL/PANIC line(s)%s" % (name, len(bad),
                                                                                 (": " + bad[0]) if bad else ""))
        log("")

        def chk_missing():
            assert not c["missing"], "missing %d, first: %r" % (len(c["missing"]), c["missing"][:10])

        def chk_stream():
            if args.dedup_window:
                return
            assert not c["missing_stream"], "missing from the stream %d, first: %r" % (
                len(c["missing_stream"]), c["missing_stream"][:10])

        def chk_noise():
            assert not noise, noise[:5]

        def chk_corrupt():
            assert not tail.corrupt, tail.corrupt[:3]

        def chk_caught():
            assert caught, "slots did not confirm the final LSN within %ds" % args.catchup

        def chk_rc():
            assert rc == 0, rc

        def chk_faults():
            assert all(v > 0 for v in self.counts.values()), self.counts

        r.check("every sensitive row has its finding (missing = 0)", chk_missing)
        r.check("every sensitive row has a stream finding" + (" (skipped: dedup on)" if args.dedup_window else ""),
                chk_stream)
        r.check("no finding from the unpublished table", chk_noise)
        r.check("findings.jsonl holds whole JSON lines only", chk_corrupt)
        r.check("every slot confirmed the final LSN", chk_caught)
        r.check("every kind of fault was injected", chk_faults)
        r.check("supervisor exits 0 on SIGTERM at the end", chk_rc)
        return len(c["missing"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rate", type=float, default=2.0, help="pgbench transactions/s per database (default 2)")
    ap.add_argument("--dedup-window", type=int, default=0, help="dedup_window_seconds (default 0: off)")
    ap.add_argument("--catchup", type=int, default=120, help="seconds allowed to catch up (default 120)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    log("soak: seed %d (rerun with --seed %d)" % (args.seed, args.seed))
    r = Runner()
    d = tempfile.mkdtemp(prefix="pgsense-soak-")
    os.chmod(d, 0o755)
    missing = 1
    soak = None
    try:
        with Cluster(version=15, name="soak15", check_log_on_exit=False) as pg15, \
                Cluster(version=17, name="soak17", check_log_on_exit=False) as pg17:
            soak = Soak(args, d, pg15, pg17)
            try:
                missing = soak.run(r)
            except Exception:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                r.failed += 1
                print("FAIL soak run")
            finally:
                for load in getattr(soak, "loads", {}).values():
                    load.stop()
                if soak.sup and soak.sup.proc.poll() is None:
                    soak.sup.stop()
    finally:
        if args.keep or r.failed:
            log("soak: work directory kept: %s" % d)
        else:
            import shutil
            shutil.rmtree(d, ignore_errors=True)
    rc = r.finish()
    return 1 if (rc or missing) else 0


if __name__ == "__main__":
    sys.exit(main())
