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


def t_big_transactions(pg):
    pg.create_db("big")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text, n numeric, a int8[], big text);"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="big")
    d = Driver(pg, "big", slot="pgsense_big")
    try:
        d.wait(lambda ls: any("table_done" in x for x in ls), what="snapshot")
        # 1-row, 1,000-row and 100,000-row transactions; a card number in numeric / int8[] gives nothing
        pg.psql("INSERT INTO t VALUES (1, 'one@corp.io', 4111111111111111, ARRAY[5555555555554444]::int8[])",
                db="big")
        pg.psql("INSERT INTO t SELECT g, 'u' || g || '@corp.io', 5555555555554444 FROM generate_series(2, 1001) g",
                db="big")
        pg.psql("INSERT INTO t SELECT g, 'u' || g || '@corp.io' FROM generate_series(1002, 101001) g", db="big")
        d.wait(lambda ls: len([x for x in ls if "txn_end" in x]) >= 3, timeout=120, what="three transactions")
        ends = [x for x in d.snapshot() if "txn_end" in x]
        assert [x["n"] for x in ends] == [1, 1000, 100000], [x["n"] for x in ends]
        fs = d.findings()
        assert len(fs) == 101001 and all(f["column"] == "v" for f in fs), len(fs)
        ids = set(int(f["pks"][0][1]) for f in fs)
        assert ids == set(range(1, 101002)), "every row's finding, keyed"
        # a 50 MB value with a secret at its end; NULLs; unchanged TOAST on UPDATE is not rescanned
        pg.psql("INSERT INTO t (id, big) VALUES (0, repeat('lorem ipsum ', 4369067) || ' ssn 078-05-1120')",
                db="big")
        d.wait(lambda ls: len([x for x in ls if "txn_end" in x]) >= 4, timeout=60, what="the 50 MB row")
        last = [f for f in d.findings() if f["column"] == "big"]
        assert [(f["rule_id"], f["masked"]) for f in last] == [("ssn", "07*******20")], last
        pg.psql("UPDATE t SET v = NULL WHERE id = 0", db="big")
        d.wait(lambda ls: len([x for x in ls if "txn_end" in x]) >= 5, timeout=30, what="the update")
        assert [x for x in d.snapshot() if "txn_end" in x][-1]["n"] == 0, "TOAST unchanged, NULL: no finding"
        # TRUNCATE goes by without harm
        pg.psql("TRUNCATE t; INSERT INTO t (id, v) VALUES (7, 'after@corp.io')", db="big")
        d.wait(lambda ls: any(x.get("masked") == "af*********io" for x in ls), timeout=30, what="after truncate")
        assert d.stop() == 0
    finally:
        d.kill()


def t_partitions_and_card_key(pg):
    pg.create_db("part")
    pg.psql("CREATE TABLE m (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);"
            "CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu'); CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');"
            "INSERT INTO m VALUES (1, 'eu', 'a@corp.io'), (2, 'us', 'b@corp.io');"
            "CREATE TABLE cards (card text PRIMARY KEY, owner text); ALTER TABLE cards REPLICA IDENTITY FULL;"
            "INSERT INTO cards VALUES ('5555555555554444', 'c@corp.io');"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish_via_partition_root = true)", db="part")
    d = Driver(pg, "part", slot="pgsense_part")
    try:
        d.wait(lambda ls: sum(1 for x in ls if "table_done" in x) >= 2, what="snapshot of m and cards")
        done = sorted(x["table"] for x in d.snapshot() if "table_done" in x)
        assert done == ["cards", "m"], done
        pg.psql("INSERT INTO m VALUES (3, 'us', 'c@corp.io'); UPDATE cards SET owner = 'd@corp.io'", db="part")
        d.wait(lambda ls: len([x for x in ls if "txn_end" in x]) >= 1, what="stream")
        fs = d.findings()
        assert sorted(set(f["table"] for f in fs)) == ["cards", "m"], fs
        for f in fs:
            if f["table"] == "cards":
                assert f["pks"] == [], "a card number as key is never in primary_keys: %r" % f
        assert [f["pks"] for f in fs if f["table"] == "m" and f["source"] == 0] == [[["id", "3"], ["region", "us"]]]
        assert d.stop() == 0
    finally:
        d.kill()


def t_alter_drop_retype(pg):
    pg.create_db("alt")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, a text, b text, c int);"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="alt")
    d = Driver(pg, "alt", slot="pgsense_alt")
    try:
        d.wait(lambda ls: any("table_done" in x for x in ls), what="snapshot")
        pg.psql("INSERT INTO t VALUES (1, 'a1@corp.io', 'b1@corp.io', 1);"
                "ALTER TABLE t DROP COLUMN a; INSERT INTO t VALUES (2, 'b2@corp.io', 2);"
                "ALTER TABLE t ALTER COLUMN c TYPE text; INSERT INTO t VALUES (3, 'b3@corp.io', 'c3@corp.io');"
                "ALTER TABLE t RENAME COLUMN b TO mail; INSERT INTO t VALUES (4, 'b4@corp.io', '4')", db="alt")
        d.wait(lambda ls: len([x for x in ls if "rule_id" in x]) >= 6, what="6 findings")
        got = sorted((f["pks"][0][1], f["column"], f["masked"]) for f in d.findings())
        assert got == [("1", "a", "a1******io"), ("1", "b", "b1******io"), ("2", "b", "b2******io"),
                       ("3", "b", "b3******io"), ("3", "c", "c3******io"), ("4", "mail", "b4******io")], got
        assert d.exit_code() is None
        assert d.stop() == 0
    finally:
        d.kill()


def t_crashes(pg):
    pg.create_db("crash")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="crash")
    d = Driver(pg, "crash", slot="pgsense_crash", extra=["--ack-delay-ms", "300"])
    try:
        d.wait(lambda ls: any("table_done" in x for x in ls), what="snapshot")
        relid = [x for x in d.snapshot() if "table_done" in x][0]["relid"]
        time.sleep(1)
        pg.psql("INSERT INTO t SELECT g, 'k' || g || '@corp.io' FROM generate_series(1, 20000) g", db="crash")
        d.wait_findings(100, timeout=30)
    finally:
        d.kill()  # SIGKILL of driver; the worker sees EOF and exits
    seen = set(int(f["pks"][0][1]) for f in d.findings())
    pg.psql("INSERT INTO t SELECT g, 'k' || g || '@corp.io' FROM generate_series(20001, 20100) g", db="crash")
    ready = ["--store-ready", "%d:public:t" % relid]
    d = Driver(pg, "crash", slot="pgsense_crash", extra=ready)
    try:
        d.wait(lambda ls: len(set(int(f["pks"][0][1]) for f in ls if "rule_id" in f) | seen) >= 20100,
               timeout=60, what="every row after the restart")
        # the server restarts under the worker: it exits 1 (the supervisor restarts it), resumes, nothing lost
        pg.restart()
        d.proc.wait(30)
        d.t1.join(5)
        assert d.exit_code() == 1, (d.exit_code(), d.log())
    finally:
        d.kill()
    seen |= set(int(f["pks"][0][1]) for f in d.findings())
    pg.psql("INSERT INTO t VALUES (30000, 'post@corp.io')", db="crash")
    d = Driver(pg, "crash", slot="pgsense_crash", extra=ready)
    try:
        d.wait(lambda ls: any("rule_id" in f and f["pks"][0][1] == "30000" for f in ls), timeout=30,
               what="the row written while the server restarted")
        assert d.stop() == 0
    finally:
        d.kill()


def t_quiet_publication_advances(pg):
    pg.create_db("quiet")
    pg.psql("CREATE TABLE quiet (id int PRIMARY KEY, v text); CREATE TABLE busy (id int, v text);"
            "CREATE PUBLICATION pgsense_pub FOR TABLE quiet", db="quiet")
    d = Driver(pg, "quiet", slot="pgsense_quiet")
    try:
        d.wait(lambda ls: any("table_done" in x for x in ls), what="snapshot")
        pg.psql("INSERT INTO busy SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g", db="quiet")
        lag = pg.poll("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) < 1048576"
                      " FROM pg_replication_slots WHERE slot_name = 'pgsense_quiet'", "t", db="quiet", timeout=20)
        assert lag
        assert d.findings() == []
        assert d.stop() == 0
    finally:
        d.kill()


def drop_idle_slots(pg):
    """Each test leaves its slot; free them so max_replication_slots is not reached."""
    deadline = time.time() + 10
    while time.time() < deadline:
        left = pg.scalar("SELECT count(*) FROM pg_replication_slots WHERE active")
        if left == "0":
            break
        time.sleep(0.1)
    pg.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active")


def main():
    r = Runner()
    versions = [int(v) for v in os.environ.get("PGSENSE_TEST_PG_VERSIONS", "15,17").split(",")]
    for v in versions:
        with Cluster(version=v, name="worker%d" % v) as pg:
            drop_idle_slots(pg)
            r.check("pg%d snapshot then stream, keys, confirm" % v, t_snapshot_then_stream, pg)
            drop_idle_slots(pg)
            r.check("pg%d update old tuple, ALTER TABLE in-stream, TOAST" % v, t_update_alter_toast, pg)
            drop_idle_slots(pg)
            r.check("pg%d resume from the slot without a new snapshot" % v, t_resume_without_resnapshot, pg)
            drop_idle_slots(pg)
            r.check("pg%d fatal: no publication, no REPLICATION" % v, t_fatal_errors, pg)
            drop_idle_slots(pg)
            r.check("pg%d table without SELECT is a table error" % v, t_table_without_select, pg)
            drop_idle_slots(pg)
            r.check("pg%d types: domain, array, jsonb, enum scanned; int, timestamptz not" % v,
                    t_types_and_scope, pg)
            drop_idle_slots(pg)
            r.check("pg%d table added to the publication is polled and snapshotted" % v, t_new_table_polled, pg)
            drop_idle_slots(pg)
            r.check("pg%d 1/1,000/100,000-row transactions, 50 MB value, NULL, TOAST, numeric, TRUNCATE" % v,
                    t_big_transactions, pg)
            drop_idle_slots(pg)
            r.check("pg%d partitioned via root, card number as key never reported" % v,
                    t_partitions_and_card_key, pg)
            drop_idle_slots(pg)
            r.check("pg%d ALTER TABLE drop, retype, rename with rows between" % v, t_alter_drop_retype, pg)
            drop_idle_slots(pg)
            r.check("pg%d worker killed, server restarted: resumes, nothing lost" % v, t_crashes, pg)
            drop_idle_slots(pg)
            r.check("pg%d quiet publication: the slot advances while others write" % v,
                    t_quiet_publication_advances, pg)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
