#!/usr/bin/python3
"""`pgsense validate --connect` and `pgsense slots list|drop` against real
PostgreSQL: each check's line, exit codes, an active slot refused."""

import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "worker"))
sys.path.insert(0, os.path.join(HERE, "..", "pg"))

from pgharness import Cluster  # noqa: E402
from wtest import Driver, Runner  # noqa: E402

PGSENSE = os.path.join(os.getcwd(), "pgsense")
RULES = os.path.abspath(os.path.join(os.environ.get("srcdir", "."), "conf", "rules.yaml"))


def write_conf(d, pg, db, user="postgres", publication="pgsense_pub"):
    path = os.path.join(d, "pgsense.ini")
    with open(path, "w") as f:
        f.write("rules_file = %s\n[[databases]]\nname = %s\nhost = %s\nport = %d\ndbname = %s\nusername = %s\n"
                "publication = %s\n[alerts.jsonl]\npath = findings.jsonl\n" % (RULES, db, pg.host, pg.port, db, user,
                                                                              publication))
    return path


def run(*args):
    p = subprocess.run([PGSENSE] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def t_validate_connect(pg, tmp):
    pg.create_db("v1")
    pg.psql("CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE nokey (v text);"
            "CREATE TABLE hidden (id int PRIMARY KEY); CREATE ROLE scan LOGIN REPLICATION;"
            "GRANT SELECT ON a, nokey TO scan;"
            "CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="v1")
    conf = write_conf(tmp, pg, "v1", user="scan")
    rc, out, err = run("validate", "-c", conf, "--connect")
    assert rc == 1, (rc, out, err)
    assert "[OK] database v1: wal_level = logical" in out, out
    assert "[OK] database v1: role scan may replicate" in out, out
    assert "[ERROR] database v1: no SELECT on public.hidden: GRANT SELECT ON public.hidden TO scan;" in out, out
    assert "[WARN] database v1: public.nokey has no replica identity" in out, out
    assert "[WARN] database v1: max_slot_wal_keep_size is unlimited" in out, out
    assert "[OK] database v1: slot pgsense_" in out and "not created yet" in out, out
    pg.psql("GRANT SELECT ON hidden TO scan", db="v1")
    rc, out, err = run("validate", "-c", conf, "--connect")
    assert rc == 0, (rc, out, err)
    assert "all readable" in out, out
    # no publication, no REPLICATION
    conf = write_conf(tmp, pg, "v1", publication="missing_pub")
    rc, out, err = run("validate", "-c", conf, "--connect")
    assert rc == 1 and 'publication "missing_pub" does not exist: CREATE PUBLICATION missing_pub' in out, out
    pg.psql("CREATE ROLE norepl LOGIN", db="v1")
    conf = write_conf(tmp, pg, "v1", user="norepl")
    rc, out, err = run("validate", "-c", conf, "--connect")
    assert rc == 1 and "ALTER ROLE norepl WITH REPLICATION" in out, out


def t_slots(pg, tmp):
    pg.create_db("s1")
    pg.psql("CREATE TABLE a (id int PRIMARY KEY, v text); CREATE PUBLICATION pgsense_pub FOR ALL TABLES", db="s1")
    conf = write_conf(tmp, pg, "s1")
    rc, out, err = run("validate", "-c", conf)
    slot = [l.split()[-1] for l in out.splitlines() if l.startswith("[OK] database s1 (")][0]
    d = Driver(pg, "s1", slot=slot)
    try:
        d.wait(lambda ls: any("table_done" in x for x in ls), what="worker streaming")
        rc, out, err = run("slots", "list", "-c", conf)
        assert rc == 0 and slot in out, (rc, out, err)
        line = [l for l in out.splitlines() if slot in l][0]
        assert line.split()[3] != "-", "active pid shown: " + line
        rc, out, err = run("slots", "drop", "-c", conf, slot)
        assert rc == 1 and "is active" in err, (rc, out, err)
        assert d.stop() == 0
    finally:
        d.kill()
    rc, out, err = run("slots", "drop", "-c", conf, slot)
    assert rc == 0 and "dropped slot " + slot in out, (rc, out, err)
    rc, out, err = run("slots", "list", "-c", conf)
    assert slot not in out, out
    rc, out, err = run("slots", "drop", "-c", conf, "not_ours")
    assert rc == 1, (rc, err)
    rc, out, err = run("slots", "frobnicate", "-c", conf)
    assert rc == 2, rc


def main():
    r = Runner()
    with tempfile.TemporaryDirectory() as tmp, Cluster(version=15, name="clidb") as pg:
        r.check("validate --connect: each check and its fix", t_validate_connect, pg, tmp)
        r.check("slots list, drop refused while active, drop", t_slots, pg, tmp)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
