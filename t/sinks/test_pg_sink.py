#!/usr/bin/python3
"""The postgres sink ([alerts.postgres]) with the real supervisor and workers:
findings appear as rows with SPEC section 5's columns; the sink's server
stopped and restarted under it loses nothing (credit withheld meanwhile);
writing into a table that a configured database scans is refused at load
unless that entry excludes it; `validate --connect` checks the sink."""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
sys.path.insert(0, os.path.join(HERE, "..", "worker"))

from e2e import Supervisor, db_entry, write_ini  # noqa: E402
from pgharness import Cluster  # noqa: E402
from wtest import Runner  # noqa: E402

BUILD = os.getcwd()
PGSENSE = os.path.join(BUILD, "pgsense")
TABLE = ("CREATE TABLE people (id int PRIMARY KEY, email text, note text);"
         "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert, update');")
COLUMNS = ["id", "database", "worker", "rule_id", "description", "category", "severity", "schema_name",
           "table_name", "column_name", "masked_sample", "primary_key", "lsn", "source", "op", "commit_time",
           "detected_at"]


def sink_section(pg, dbname, extra=""):
    return "[alerts.postgres]\nhost = %s\nport = %d\ndbname = %s\nusername = postgres\n%s" % (
        pg.host, pg.port, dbname, extra)


def sink_rows(pg, db="sink", where="true"):
    try:
        return pg.query("SELECT row_to_json(f)::text FROM pgsense.findings f WHERE %s ORDER BY id" % where, db=db)
    except Exception:  # noqa: BLE001 - table not created yet
        return []


def wait_rows(pg, pred, db="sink", timeout=60, what="rows"):
    deadline = time.time() + timeout
    rows = []
    while time.time() < deadline:
        rows = [json.loads(r[0]) for r in sink_rows(pg, db)]
        if pred(rows):
            return rows
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s (have %d)" % (what, len(rows)))


def ids(rows, rule="email-address"):
    return set(int(r["primary_key"]["id"]) for r in rows if r["rule_id"] == rule and r["primary_key"])


def t_rows(ctx):
    src, dst, d = ctx["src"], ctx["dst"], ctx["dir"]
    src.create_db("shop")
    src.psql(TABLE + "INSERT INTO people VALUES (1, 'jane.secret@corp.test', 'card 4012888888881881')", db="shop")
    dst.create_db("sink")
    ini = write_ini(d, [db_entry("shop", src, "shop")], extra=sink_section(dst, "sink"))
    ctx["ini"] = ini
    sup = Supervisor(d, ini)
    ctx["sup"] = sup
    sup.wait_state("shop", "streaming")
    rows = wait_rows(dst, lambda rs: len(rs) >= 2, what="the snapshot findings")
    cols = [c[0] for c in dst.query("SELECT attname FROM pg_attribute WHERE attrelid = 'pgsense.findings'::regclass "
                                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", db="sink")]
    assert cols == COLUMNS, cols
    types = dict(dst.query("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                           "'pgsense.findings'::regclass AND attnum > 0", db="sink"))
    assert types["primary_key"] == "jsonb" and types["lsn"] == "bigint" and types["id"] == "bigint", types
    assert types["detected_at"] == "timestamp with time zone", types
    card = [r for r in rows if r["rule_id"] == "credit-card"][0]
    assert card["severity"] == "CRITICAL" and card["source"] == "snapshot" and card["op"] == "snapshot", card
    assert card["masked_sample"] == "40************81" and card["primary_key"] == {"id": "1"}, card
    assert card["database"].endswith("/shop") and card["worker"] == "shop" and card["commit_time"] is None, card
    assert card["schema_name"] == "public" and card["table_name"] == "people" and card["column_name"] == "note"
    src.psql("INSERT INTO people VALUES (2, 'x', 'ssn 078-05-1120')", db="shop")
    rows = wait_rows(dst, lambda rs: any(r["rule_id"] == "ssn" for r in rs), what="a stream finding")
    ssn = [r for r in rows if r["rule_id"] == "ssn"][0]
    assert ssn["source"] == "stream" and ssn["op"] == "insert" and ssn["commit_time"], ssn
    assert isinstance(ssn["lsn"], int) and ssn["lsn"] > 0, ssn
    st = sup.status()
    sinks = {s["name"]: s for s in st["sinks"]}
    assert "postgres" in sinks and sinks["postgres"]["delivered"] >= 3, st["sinks"]
    log = sup.log_text()
    assert "4012888888881881" not in log and "078-05-1120" not in log


def t_restart_under_it(ctx):
    src, dst, sup = ctx["src"], ctx["dst"], ctx["sup"]
    dst.stop()
    src.psql("INSERT INTO people SELECT g, 'u' || g || '@corp.io' FROM generate_series(100, 599) g", db="shop")
    time.sleep(3)
    st = sup.status()
    assert {s["name"]: s for s in st["sinks"]}["postgres"]["errors"] >= 1, st["sinks"]
    assert "postgres sink" in sup.log_text(), sup.log_tail()
    dst.start()
    wait_rows(dst, lambda rs: set(range(100, 600)) <= ids(rs), what="every row written while the sink was down")
    # and a restart with writes flowing
    writer = subprocess.Popen([os.path.join("/usr/lib/postgresql/15/bin", "psql"), "-X", "-q", "-d",
                               src.dsn("shop"), "-c",
                               "INSERT INTO people SELECT g, 'w' || g || '@corp.io' FROM generate_series(1000, 5999) g"])
    time.sleep(0.2)
    dst.restart(mode="immediate")
    writer.wait(60)
    wait_rows(dst, lambda rs: set(range(1000, 6000)) <= ids(rs), what="every row around the restart")
    assert "writing again" in sup.log_text(), sup.log_tail(40)


def t_validate_connect(ctx):
    r = subprocess.run([PGSENSE, "validate", "-c", ctx["ini"], "--connect"], capture_output=True, text=True,
                       timeout=60)
    assert "[OK] sink postgres: connected to database sink" in r.stdout, r.stdout
    ctx["dst"].stop()
    r = subprocess.run([PGSENSE, "validate", "-c", ctx["ini"], "--connect"], capture_output=True, text=True,
                       timeout=60)
    ctx["dst"].start()
    assert r.returncode == 1 and "[ERROR] sink postgres: cannot connect" in r.stdout, r.stdout
    assert ctx["sup"].stop() == 0


def t_refuse_scanned_table(ctx):
    src = ctx["src"]
    if ctx.get("sup") and ctx["sup"].proc.poll() is None:
        ctx["sup"].stop()  # one reader per slot
    d = tempfile.mkdtemp(dir=ctx["dir"])
    ini = write_ini(d, [db_entry("shop", src, "shop")], extra=sink_section(src, "shop"))
    r = subprocess.run([os.path.join(BUILD, "pgsense-supervisor"), "-c", ini], cwd=d, capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, PGSENSE_WORKER=""))
    out = r.stdout + r.stderr
    try:
        out += open(os.path.join(d, "log", "supervisor.log")).read()
    except OSError:
        pass
    assert r.returncode == 1, (r.returncode, out)
    assert "pgsense.findings" in out and '"shop"' in out and "exclude_tables = findings" in out, out
    # excluded: accepted, its own rows land in the scanned database and are not scanned again
    ini = write_ini(d, [db_entry("shop", src, "shop", extra="[databases.scan]\nexclude_tables = findings\n")],
                    extra=sink_section(src, "shop"))
    sup = Supervisor(d, ini)
    try:
        sup.wait_state("shop", "streaming")
        rows = wait_rows(src, lambda rs: set(range(100, 600)) <= ids(rs), db="shop", what="findings in shop")
        time.sleep(2)
        rows = [json.loads(x[0]) for x in sink_rows(src, db="shop")]
        assert all(r["table_name"] == "people" for r in rows), [r for r in rows if r["table_name"] != "people"][:3]
    finally:
        assert sup.stop() == 0


def main():
    r = Runner()
    with tempfile.TemporaryDirectory() as d, Cluster(version=17, name="pgsink_src") as src, \
            Cluster(version=15, name="pgsink_dst", expected_log=[r"FATAL:.*terminating connection",
                                                                 r"the database system is (shutting down|starting up)"]) as dst:
        ctx = {"src": src, "dst": dst, "dir": d}
        try:
            r.check("findings become rows with SPEC section 5's columns", t_rows, ctx)
            r.check("the sink's server stopped / restarted under it: reconnect, nothing lost", t_restart_under_it,
                    ctx)
            r.check("validate --connect checks the sink with SELECT 1", t_validate_connect, ctx)
            r.check("a scanned table is refused unless excluded", t_refuse_scanned_table, ctx)
        finally:
            if ctx.get("sup") and ctx["sup"].proc.poll() is None:
                ctx["sup"].stop()
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
