#!/usr/bin/python3
"""Integration tests of pgsense-worker against real PostgreSQL 15 and 17,
with t/worker/driver playing the supervisor (issue: the replication worker).
Run from the build directory (make check does)."""

import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pg"))

from pgharness import Cluster  # noqa: E402
from wtest import Driver, Runner  # noqa: E402

SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, email text, note text, age int, uid uuid, created timestamptz);
CREATE TABLE orders (order_no text PRIMARY KEY, card text, amount numeric);
INSERT INTO users (email, note, uid, created) VALUES
  ('jane.doe@corp.test', 'no card', '3f2504e0-4f89-11d3-9a0c-0305e82c3301', '2024-01-15 10:00:00+00'),
  ('bob@acme.io', 'nothing here', NULL, NULL);
INSERT INTO orders VALUES ('ORD-1', '5555 5555 5555 4444', 10);
CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert, update');
"""


def masked(fs):
    return sorted((f["table"], f["column"], f["rule_id"], f["masked"], f["source"]) for f in fs)


def t_snapshot_then_stream(pg):
    pg.create_db("app")
    pg.psql(SCHEMA, db="app")
    d = Driver(pg, "app")
    try:
        d.wait(lambda ls: sum(1 for x in ls if "table_done" in x) >= 2, what="two tables snapshotted")
        fs = d.findings()
        assert masked(fs) == [
            ("orders", "card", "credit-card", "55***************44", 1),
            ("users", "email", "email-address", "bo*******io", 1),
            ("users", "email", "email-address", "ja**************st", 1),
        ], masked(fs)
        card = [f for f in fs if f["rule_id"] == "credit-card"][0]
        assert card["pks"] == [["order_no", "ORD-1"]], card
        assert card["op"] == 2 and card["commit_time"] == 0
        pg.psql("INSERT INTO users (email, note) VALUES ('x', 'ssn 123-45-6789 and card 4012888888881881')",
                db="app")
        fs = d.wait_findings(5)
        stream = [f for f in fs if f["source"] == 0]
        assert sorted((f["rule_id"], f["masked"]) for f in stream) == [
            ("credit-card", "40************81"), ("ssn", "12*******89")], stream
        assert all(f["op"] == 0 and f["commit_time"] > 1700000000000000 for f in stream), stream
        assert stream[0]["pks"] == [["id", "3"]], stream[0]
        # a transaction end follows, with an end LSN, and the worker confirms it once acked
        d.wait(lambda ls: any("txn_end" in x and x["n"] == 2 for x in ls), what="txn_end with 2 findings")
        end = [x for x in d.snapshot() if "txn_end" in x and x["n"] == 2][0]["end_lsn"]
        pg.poll("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0') >= %d FROM pg_replication_slots" % end,
                "t", db="app", timeout=10)
        assert d.stop() == 0, d.log()
    finally:
        d.kill()


def t_update_alter_toast(pg):
    pg.create_db("upd")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, a text, big text);"
            "ALTER TABLE t REPLICA IDENTITY FULL;"
            "INSERT INTO t VALUES (1, 'a@b.io', repeat('x', 100000) || ' 078-05-1120');"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="upd")
    d = Driver(pg, "upd", slot="pgsense_upd")
    try:
        d.wait(lambda ls: any("table_done" in x for x in ls), what="snapshot")
        n0 = len(d.findings())
        assert n0 == 2, d.findings()
        # old tuple (REPLICA IDENTITY FULL): unchanged columns are not rescanned
        pg.psql("UPDATE t SET a = 'new@corp.io' WHERE id = 1", db="upd")
        d.wait(lambda ls: len([x for x in ls if "txn_end" in x]) >= 1, what="txn_end")
        fs = [f for f in d.findings() if f["source"] == 0]
        assert [(f["column"], f["masked"]) for f in fs] == [("a", "ne*******io")], fs
        # ALTER TABLE in-stream: add, rename; the new column is scanned under its new name
        pg.psql("ALTER TABLE t ADD COLUMN contact text; INSERT INTO t (id, contact) VALUES (2, 'bob@acme.io');"
                "ALTER TABLE t RENAME COLUMN contact TO mail; INSERT INTO t (id, mail) VALUES (3, 'eve@acme.io');"
                "ALTER TABLE t ALTER COLUMN a TYPE varchar(200); INSERT INTO t (id, a) VALUES (4, 'al@acme.io')",
                db="upd")
        d.wait(lambda ls: len([x for x in ls if "rule_id" in x and x["source"] == 0]) >= 4, what="4 stream findings")
        fs = [f for f in d.findings() if f["source"] == 0][1:]
        assert sorted((f["column"], f["masked"]) for f in fs) == [
            ("a", "al******io"), ("contact", "bo*******io"), ("mail", "ev*******io")], fs
        assert d.exit_code() is None, "no restart for ALTER TABLE"
        assert d.stop() == 0
    finally:
        d.kill()


def t_resume_without_resnapshot(pg):
    pg.create_db("res")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a@corp.io');"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="res")
    d = Driver(pg, "res", slot="pgsense_res")
    try:
        done = d.wait(lambda ls: any("table_done" in x for x in ls), what="snapshot")
        relid = [x for x in d.snapshot() if "table_done" in x][0]["relid"]
        assert done
        time.sleep(1.5)  # let the ack of TABLE_DONE reach the worker
        assert d.stop() == 0
    finally:
        d.kill()
    # written while no worker runs: must arrive from the slot after the restart
    pg.psql("INSERT INTO t VALUES (2, 'while-down@corp.io')", db="res")
    d = Driver(pg, "res", slot="pgsense_res", extra=["--store-ready", "%d:public:t" % relid])
    try:
        fs = d.wait_findings(1)
        time.sleep(1.0)
        fs = d.findings()
        assert [(f["masked"], f["source"]) for f in fs] == [("wh**************io", 0)], fs
        assert not any("table_done" in x for x in d.snapshot()), "no re-snapshot"
        assert d.stop() == 0
    finally:
        d.kill()


def t_fatal_errors(pg):
    pg.create_db("bad")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)", db="bad")
    d = Driver(pg, "bad", slot="pgsense_bad")
    d.proc.wait(30)
    d.t1.join(5)
    assert d.exit_code() == 3, (d.exit_code(), d.log())
    assert "CREATE PUBLICATION pgsense_pub" in d.exit_reason(), d.exit_reason()
    # a role without REPLICATION
    pg.psql("CREATE PUBLICATION pgsense_pub FOR ALL TABLES; CREATE ROLE plain LOGIN", db="bad")
    d = Driver(pg, "bad", user="plain", slot="pgsense_bad")
    d.proc.wait(30)
    d.t1.join(5)
    assert d.exit_code() == 3, (d.exit_code(), d.log())
    assert "ALTER ROLE plain WITH REPLICATION" in d.exit_reason(), d.exit_reason()


def t_table_without_select(pg):
    pg.create_db("perm")
    pg.psql("CREATE TABLE open_t (id int PRIMARY KEY, v text); CREATE TABLE secret_t (id int PRIMARY KEY, v text);"
            "INSERT INTO open_t VALUES (1, 'a@corp.io'); INSERT INTO secret_t VALUES (1, 'b@corp.io');"
            "CREATE ROLE scanner LOGIN REPLICATION; GRANT SELECT ON open_t TO scanner;"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="perm")
    d = Driver(pg, "perm", user="scanner", slot="pgsense_perm")
    try:
        d.wait(lambda ls: any("table_done" in x for x in ls) and any("table_error" in x for x in ls),
               what="one table done, one table error")
        errs = [x for x in d.snapshot() if "table_error" in x]
        assert errs[0]["table_error"] == "secret_t" and errs[0]["reason"].startswith("42501"), errs
        assert [f["table"] for f in d.findings()] == ["open_t"], d.findings()
        # streaming of the readable table goes on
        pg.psql("INSERT INTO open_t VALUES (2, 'c@corp.io')", db="perm")
        d.wait_findings(2)
        assert d.stop() == 0
    finally:
        d.kill()


def t_types_and_scope(pg):
    pg.create_db("types")
    pg.psql("CREATE DOMAIN email_t AS text; CREATE TYPE mood AS ENUM ('ok', 'a@corp.io');"
            "CREATE TABLE t (id int PRIMARY KEY, d email_t, arr text[], j jsonb, m mood, n int8, ts timestamptz);"
            "CREATE TABLE audit_log (id int PRIMARY KEY, v text);"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="types")
    d = Driver(pg, "types", slot="pgsense_types")
    try:
        d.wait(lambda ls: sum(1 for x in ls if "table_done" in x) >= 2, what="snapshot")
        pg.psql("INSERT INTO t VALUES (1, 'd@corp.io', ARRAY['arr@corp.io'], '{\"k\": \"j@corp.io\"}', "
                "'a@corp.io', 4111111111111111, now())", db="types")
        fs = d.wait_findings(4)
        time.sleep(0.5)
        fs = d.findings()
        assert sorted(f["column"] for f in fs) == ["arr", "d", "j", "m"], fs
        assert d.stop() == 0
    finally:
        d.kill()


def t_new_table_polled(pg):
    pg.create_db("poll")
    pg.psql("CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);"
            "INSERT INTO b VALUES (1, 'old@corp.io');"
            "CREATE PUBLICATION pgsense_pub FOR TABLE a", db="poll")
    d = Driver(pg, "poll", slot="pgsense_poll", env={"DRIVER_POLL_S": "1"})
    try:
        d.wait(lambda ls: any("table_done" in x for x in ls), what="first snapshot")
        pg.psql("ALTER PUBLICATION pgsense_pub ADD TABLE b", db="poll")
        d.wait(lambda ls: any("table_done" in x and x["table"] == "b" for x in ls), what="b snapshotted")
        assert [(f["table"], f["masked"]) for f in d.findings()] == [("b", "ol*******io")], d.findings()
        assert d.stop() == 0
    finally:
        d.kill()


def main():
    r = Runner()
    versions = [int(v) for v in os.environ.get("PGSENSE_TEST_PG_VERSIONS", "15,17").split(",")]
    for v in versions:
        with Cluster(version=v, name="worker%d" % v) as pg:
            r.check("pg%d snapshot then stream, keys, confirm" % v, t_snapshot_then_stream, pg)
            r.check("pg%d update old tuple, ALTER TABLE in-stream, TOAST" % v, t_update_alter_toast, pg)
            r.check("pg%d resume from the slot without a new snapshot" % v, t_resume_without_resnapshot, pg)
            r.check("pg%d fatal: no publication, no REPLICATION" % v, t_fatal_errors, pg)
            r.check("pg%d table without SELECT is a table error" % v, t_table_without_select, pg)
            r.check("pg%d types: domain, array, jsonb, enum scanned; int, timestamptz not" % v,
                    t_types_and_scope, pg)
            r.check("pg%d table added to the publication is polled and snapshotted" % v, t_new_table_polled, pg)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
