#!/usr/bin/python3
"""`pgsense migrations --print-sql | psql` as a superuser on PostgreSQL 15 and
17: creates everything SPEC section 6 lists (etl schema, _sqlx_migrations rows
with sha384sum checksums, enums, tables, functions, the event trigger), runs
twice harmlessly, refuses a tampered checksum, and an ALTER TABLE emits a
logical message (pg_logical_slot_peek_binary_changes with messages 'true')."""

import hashlib
import os
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
sys.path.insert(0, os.path.join(HERE, "..", "worker"))

from pgharness import Cluster, PsqlError, client_bin  # noqa: E402
from wtest import Runner  # noqa: E402

BUILD = os.getcwd()
SRCDIR = os.path.abspath(os.environ.get("srcdir", os.path.join(HERE, "..", "..")))
PGSENSE = os.path.join(BUILD, "pgsense")
MIGRATIONS = ["20250827000000_base.sql", "20260415090000_schema_storage_ddl_support.sql",
              "20260415100000_schema_change_messages.sql"]


def print_sql():
    r = subprocess.run([PGSENSE, "migrations", "--print-sql"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def psql_script(pg, db, script):
    """Feed the script to psql as an operator would (no ON_ERROR_STOP of our own: the script sets it)."""
    return subprocess.run([client_bin("psql"), "-X", "-q", "-d", pg.dsn(db)], input=script, capture_output=True,
                          text=True, timeout=120)


def t_apply(pg):
    pg.create_db("app")
    r = psql_script(pg, "app", print_sql())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ERROR" not in r.stderr, r.stderr
    rows = pg.query("SELECT version, description, success, encode(checksum, 'hex') FROM etl._sqlx_migrations "
                    "ORDER BY version", db="app")
    want = []
    for f in MIGRATIONS:
        with open(os.path.join(SRCDIR, "src", "migrations", f), "rb") as fh:
            want.append([f.split("_", 1)[0], f.split("_", 1)[1][:-4].replace("_", " "), "t",
                         hashlib.sha384(fh.read()).hexdigest()])
    assert rows == want, (rows, want)
    names = lambda sql: sorted(x[0] for x in pg.query(sql, db="app"))  # noqa: E731
    assert names("SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = typnamespace "
                 "WHERE nspname = 'etl' AND typtype = 'e'") == ["destination_table_schema_status", "table_state"]
    assert names("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = relnamespace "
                 "WHERE nspname = 'etl' AND relkind = 'r'") == [
        "_sqlx_migrations", "destination_tables_metadata", "replication_state", "table_columns", "table_schemas"]
    assert names("SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = pronamespace "
                 "WHERE nspname = 'etl'") == [
        "describe_table_identity", "describe_table_schema", "emit_schema_change_messages"]
    trig = pg.query("SELECT evtevent, evttags::text, evtfoid::regproc::text FROM pg_event_trigger "
                    "WHERE evtname = 'supabase_etl_ddl_message_trigger'", db="app")
    assert trig == [["ddl_command_end", "{\"ALTER TABLE\"}", "etl.emit_schema_change_messages"]], trig
    pg.psql("CREATE TABLE people (id int PRIMARY KEY, email text)", db="app")
    cols = pg.query("SELECT column_name, column_order, type_name, nullable, primary_key_ordinal "
                    "FROM etl.describe_table_schema('people'::regclass)", db="app")
    assert cols == [["id", "1", "integer", "f", "1"], ["email", "2", "text", "t", None]], cols
    assert pg.query("SELECT column_name, source FROM etl.describe_table_identity('people'::regclass)",
                    db="app") == [["id", "primary_key"]]


def t_twice(pg):
    r = psql_script(pg, "app", print_sql())
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("already applied") == 3, r.stdout
    assert pg.scalar("SELECT count(*) FROM etl._sqlx_migrations", db="app") == "3"


def t_tampered(pg):
    pg.psql("UPDATE etl._sqlx_migrations SET checksum = '\\x00' WHERE version = 20260415090000", db="app")
    r = psql_script(pg, "app", print_sql())
    assert r.returncode != 0, r.stdout
    assert "migration 20260415090000 in etl._sqlx_migrations" in r.stderr, r.stderr
    pg.psql("UPDATE etl._sqlx_migrations SET checksum = decode('%s', 'hex') WHERE version = 20260415090000" %
            hashlib.sha384(open(os.path.join(SRCDIR, "src", "migrations", MIGRATIONS[1]), "rb").read()).hexdigest(),
            db="app")


def t_alter_emits_message(pg):
    pg.psql("CREATE PUBLICATION p FOR ALL TABLES", db="app")
    pg.psql("SELECT pg_create_logical_replication_slot('mig_test', 'pgoutput')", db="app")
    pg.psql("ALTER TABLE people ADD COLUMN phone text", db="app")
    # a role that is not a superuser altering its own table: the trigger still emits
    pg.psql("CREATE ROLE app_owner LOGIN; GRANT CREATE ON SCHEMA public TO app_owner", db="app")
    pg.psql("CREATE TABLE owned (id int PRIMARY KEY); ALTER TABLE owned ADD COLUMN note text", db="app",
            user="app_owner")
    rows = pg.query("SELECT encode(data, 'escape') FROM pg_logical_slot_peek_binary_changes('mig_test', NULL, "
                    "NULL, 'proto_version', '1', 'publication_names', 'p', 'messages', 'true') "
                    "WHERE get_byte(data, 0) = 77", db="app")  # 'M'
    texts = [r[0] for r in rows]
    assert len(texts) == 2, texts
    assert "supabase_etl_ddl" in texts[0] and '"table_name": "people"' in texts[0], texts[0]
    assert '"column_name": "phone"' in texts[0], texts[0]
    assert '"table_name": "owned"' in texts[1] and '"column_name": "note"' in texts[1], texts[1]
    pg.psql("SELECT pg_drop_replication_slot('mig_test')", db="app")


def t_non_superuser_run_fails_cleanly(pg):
    """The script is for superusers: a plain role stops at the event trigger, the first two stay applied."""
    pg.create_db("plain")
    pg.psql("CREATE ROLE plain_owner LOGIN; GRANT CREATE ON DATABASE plain TO plain_owner")
    r = subprocess.run([client_bin("psql"), "-X", "-q", "-d", pg.dsn("plain", user="plain_owner")],
                       input=print_sql(), capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "permission denied to create event trigger" in r.stderr, r.stderr
    assert pg.query("SELECT version FROM etl._sqlx_migrations ORDER BY 1", db="plain") == [
        ["20250827000000"], ["20260415090000"]]


def main():
    r = Runner()
    for version in (15, 17):
        with Cluster(version=version, name="mig%d" % version,
                     expected_log=[r"permission denied to create event trigger", r"ERROR:",
                                   r"STATEMENT:", r"migration 20260415090000"]) as pg:
            r.check("pg%d: --print-sql | psql creates the etl schema, rows with sha384 checksums" % version,
                    t_apply, pg)
            r.check("pg%d: running it twice is harmless" % version, t_twice, pg)
            r.check("pg%d: a tampered checksum stops the script" % version, t_tampered, pg)
            r.check("pg%d: ALTER TABLE emits a supabase_etl_ddl logical message" % version, t_alter_emits_message,
                    pg)
            r.check("pg%d: as a non-superuser the trigger migration fails, the others stay" % version,
                    t_non_superuser_run_fails_cleanly, pg)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
