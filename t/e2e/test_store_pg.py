#!/usr/bin/python3
"""store = postgres end to end (issue: sinks and the postgres store):
migrations applied by the worker, a non-superuser first run (trigger
skipped, scanning works), migrations as superuser then the scanner as a
non-superuser (applied ones skipped), a tampered checksum refused, kill -9
of the supervisor and a restart without a new snapshot and nothing lost,
ALTER TABLE mid-stream with the trigger: no restart, a schema-history row."""

import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
sys.path.insert(0, os.path.join(HERE, "..", "worker"))

from e2e import Supervisor, db_entry, findings, wait_findings, write_ini  # noqa: E402
from pgharness import Cluster, CLIENT_BIN  # noqa: E402
from wtest import Runner  # noqa: E402

PGSENSE = os.path.join(os.getcwd(), "pgsense")
STORE = "[pipeline]\nstore = postgres\n"


def setup_db(pg, db, role):
    pg.create_db(db)
    pg.psql("CREATE TABLE people (id int PRIMARY KEY, email text);"
            "INSERT INTO people VALUES (1, 'one@corp.io');"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert, update');"
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
            "CREATE ROLE %s LOGIN REPLICATION; END IF; END $$;"
            "GRANT CREATE ON DATABASE %s TO %s; GRANT SELECT ON people TO %s;" % (role, role, db, role, role), db=db)


def entry(pg, db, user):
    return db_entry(db, pg, db).replace("username = postgres", "username = %s" % user)


def t_non_superuser_first_run(ctx):
    pg, d = ctx["pg"], tempfile.mkdtemp(dir=ctx["tmp"])
    setup_db(pg, "ns", "scanner")
    ini = write_ini(d, [entry(pg, "ns", "scanner")], extra=STORE)
    sup = Supervisor(d, ini)
    try:
        sup.wait_state("ns", "streaming")
        wait_findings(d, lambda fs: len(fs) >= 1, what="snapshot finding")
        log = open(os.path.join(d, "log", "worker-ns.log")).read()
        assert "skipped: needs a superuser" in log, log[-2000:]
        assert "etl." not in "".join(f["table_name"] for f in findings(d)), "own state tables never scanned"
        versions = pg.query("SELECT version FROM etl._sqlx_migrations ORDER BY 1", db="ns")
        assert [int(v[0]) for v in versions] == [20250827000000, 20260415090000], versions
        pg.psql("INSERT INTO people VALUES (2, 'two@corp.io')", db="ns")
        wait_findings(d, lambda fs: len(fs) >= 2, what="stream finding")
    finally:
        assert sup.stop() == 0


def t_superuser_then_scanner(ctx):
    pg, d = ctx["pg"], tempfile.mkdtemp(dir=ctx["tmp"])
    ctx["dir"] = d
    setup_db(pg, "su", "scanner")
    script = subprocess.run([PGSENSE, "migrations", "--print-sql"], capture_output=True, text=True, check=True)
    pg.psql(script.stdout, db="su")
    pg.psql("GRANT USAGE ON SCHEMA etl TO scanner; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA etl"
            " TO scanner; GRANT USAGE ON ALL SEQUENCES IN SCHEMA etl TO scanner", db="su")
    ini = write_ini(d, [entry(pg, "su", "scanner")], extra=STORE)
    ctx["ini"] = ini
    sup = Supervisor(d, ini)
    ctx["sup"] = sup
    sup.wait_state("su", "streaming")
    wait_findings(d, lambda fs: len(fs) >= 1, what="snapshot finding")
    log = open(os.path.join(d, "log", "worker-su.log")).read()
    assert "applied migration" not in log, "every migration was already applied"
    assert "schema history kept" in log, log[-2000:]
    ready = pg.scalar("SELECT count(*) FROM etl.replication_state WHERE state = 'ready' AND table_id <> 0", db="su")
    deadline = time.time() + 10
    while ready != "1" and time.time() < deadline:
        time.sleep(0.2)
        ready = pg.scalar("SELECT count(*) FROM etl.replication_state WHERE state = 'ready' AND table_id <> 0",
                          db="su")
    assert ready == "1", ready


def t_alter_table_history(ctx):
    pg, d, sup = ctx["pg"], ctx["dir"], ctx["sup"]
    pid = sup.worker(sup.status(), "su")["pid"]
    pg.psql("ALTER TABLE people ADD COLUMN phone text; INSERT INTO people VALUES (3, 'three@corp.io', '+1 415 555 2671')",
            db="su")
    wait_findings(d, lambda fs: any(f["column_name"] == "phone" for f in fs), what="finding in the new column")
    deadline = time.time() + 10
    rows = "0"
    while rows == "0" and time.time() < deadline:
        rows = pg.scalar("SELECT count(*) FROM etl.table_schemas s JOIN etl.table_columns c ON c.table_schema_id = s.id"
                         " WHERE s.table_name = 'people' AND c.column_name = 'phone'", db="su")
        time.sleep(0.2)
    assert rows == "1", "schema-history row for the new layout"
    st = sup.status()
    assert sup.worker(st, "su")["pid"] == pid and sup.worker(st, "su")["restarts"] == 0, "no restart"


def t_kill_supervisor_no_resnapshot(ctx):
    pg, d, sup = ctx["pg"], ctx["dir"], ctx["sup"]
    sup.kill9()
    time.sleep(1)
    pg.psql("INSERT INTO people VALUES (4, 'four@corp.io')", db="su")
    before = len(findings(d))
    sup = Supervisor(d, ctx["ini"])
    ctx["sup"] = sup
    sup.wait_state("su", "streaming")
    fs = wait_findings(d, lambda fs: any(f["primary_keys"] == [["id", "4"]] for f in fs), what="row 4")
    time.sleep(1)
    fs = findings(d)[before:]
    assert not any(f["source"] == "snapshot" for f in fs), "no re-snapshot after a supervisor restart: %r" % fs
    assert sup.stop() == 0


def t_tampered_checksum(ctx):
    pg, d = ctx["pg"], tempfile.mkdtemp(dir=ctx["tmp"])
    pg.psql("UPDATE etl._sqlx_migrations SET checksum = decode(repeat('00', 48), 'hex') WHERE version = 20250827000000",
            db="su")
    ini = write_ini(d, [entry(pg, "su", "scanner")], extra=STORE)
    sup = Supervisor(d, ini)
    try:
        st = sup.wait_state("su", "failed")
        reason = sup.worker(st, "su")["last_exit"]["reason"]
        assert "20250827000000" in reason and "checksum" in reason, reason
    finally:
        assert sup.stop() == 0


def main():
    r = Runner()
    with tempfile.TemporaryDirectory() as tmp, Cluster(version=17, name="storepg") as pg:
        ctx = {"pg": pg, "tmp": tmp}
        try:
            r.check("non-superuser first run: trigger skipped with a WARN, scanning works", t_non_superuser_first_run, ctx)
            r.check("migrations as superuser, scanner as non-superuser: applied ones skipped", t_superuser_then_scanner,
                    ctx)
            r.check("ALTER TABLE mid-stream with the trigger: no restart, schema history", t_alter_table_history, ctx)
            r.check("kill -9 of the supervisor: no re-snapshot, nothing lost", t_kill_supervisor_no_resnapshot, ctx)
            r.check("a tampered checksum stops the worker with a clear error", t_tampered_checksum, ctx)
        finally:
            if ctx.get("sup") and ctx["sup"].proc.poll() is None:
                ctx["sup"].stop()
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
