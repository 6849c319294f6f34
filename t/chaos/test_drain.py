#!/usr/bin/python3
"""Drain (issue 6): SIGTERM to the supervisor while its worker is in the
middle of a 100,000-row transaction. The supervisor must exit 0 within 30 s;
after a restart nothing is missing: every one of the 100,000 rows has a
*stream* finding in findings.jsonl (duplicates allowed). Dedup is off so a
redelivered stream finding is never hidden by the re-snapshot that
store = memory does after a supervisor restart."""

import os
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos import Cluster, FindingsTail, Runner, Supervisor, client_bin, db_entry, log, write_ini  # noqa: E402

N = 100000
SCHEMA = ("CREATE TABLE big (id int PRIMARY KEY, email text);"
          "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert, update');")


def ids(items, source=None):
    return set(int(f["primary_keys"][0][1]) for f in items
               if f.get("table_name") == "big" and f.get("primary_keys") and (source is None or f["source"] == source))


def main():
    r = Runner()
    ctx = {}
    with tempfile.TemporaryDirectory() as d, Cluster(version=17, name="drain") as pg:
        os.chmod(d, 0o755)
        pg.create_db("app")
        pg.psql(SCHEMA, db="app")
        ini = write_ini(d, [db_entry("app", pg, "app")], extra="[alerts]\ndedup_window_seconds = 0\n")
        tail = FindingsTail(os.path.join(d, "findings.jsonl"))

        def t_sigterm_mid_transaction():
            sup = Supervisor(d, ini)
            ctx["sup"] = sup
            sup.wait_state("app", "streaming")
            t = time.time()
            subprocess.run([client_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.dsn("app"), "-c",
                            "INSERT INTO big SELECT g, 'd' || g || '@drain.test' FROM generate_series(1, %d) g" % N],
                           check=True, timeout=120)
            log("  the %d-row transaction committed in %.1fs" % (N, time.time() - t))
            # SIGTERM once the worker is inside the transaction: its first findings are written
            deadline = time.time() + 60
            while time.time() < deadline and tail.count == 0:
                tail.poll()
                time.sleep(0.005)
            got = len(ids(tail.snapshot()))
            assert got > 0, "no finding of the transaction within 60 s"
            t = time.time()
            sup.signal(signal.SIGTERM)
            log("  SIGTERM with %d of %d findings written" % (got, N))
            try:
                rc = sup.proc.wait(40)
            except subprocess.TimeoutExpired:
                rc = None
            took = time.time() - t
            sup.stop()
            tail.poll()
            ctx["at_stop"] = len(ids(tail.snapshot()))
            log("  supervisor exited %s after %.1fs; %d of %d findings in findings.jsonl" % (rc, took,
                                                                                          ctx["at_stop"], N))
            ctx["mid"] = got < N
            assert rc == 0, "exit status %r" % rc
            assert took < 30, "took %.1fs" % took

        def t_really_mid_transaction():
            assert ctx.get("mid"), "the worker had finished the transaction before SIGTERM: not a drain test"

        def t_nothing_missing_after_restart():
            sup = Supervisor(d, ini)
            ctx["sup"] = sup
            sup.wait_state("app", "streaming")
            deadline = time.time() + 120
            while time.time() < deadline and len(ids(tail.snapshot(), "stream")) < N:
                tail.poll()
                time.sleep(0.5)
            tail.poll()
            items = tail.snapshot()
            stream = ids(items, "stream")
            missing = set(range(1, N + 1)) - stream
            big = [f for f in items if f.get("table_name") == "big"]
            log("  after the restart: %d findings for the table (%d stream, %d snapshot), %d rows without a "
                "stream finding" % (len(big), sum(1 for f in big if f["source"] == "stream"),
                                    sum(1 for f in big if f["source"] == "snapshot"), len(missing)))
            assert not tail.corrupt, tail.corrupt[:3]
            assert not missing, "%d rows have no stream finding, e.g. %r" % (len(missing), sorted(missing)[:10])
            rc = sup.stop()
            assert rc == 0, rc

        try:
            r.check("SIGTERM during a %d-row transaction: supervisor exits 0 within 30 s" % N,
                    t_sigterm_mid_transaction)
            r.check("the SIGTERM landed while the transaction was being delivered", t_really_mid_transaction)
            r.check("after a restart every row has its stream finding (duplicates allowed)",
                    t_nothing_missing_after_restart)
        finally:
            if ctx.get("sup") and ctx["sup"].proc.poll() is None:
                ctx["sup"].stop()
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
