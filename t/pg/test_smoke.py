#!/usr/bin/python3
"""Smoke test of the PostgreSQL harness: for 15 and 17, start a throwaway
cluster, check it is the right version with wal_level=logical, publish a
table, create a pgoutput slot, see an insert come out of it, drop the slot,
stop, and check the files are gone. PGSENSE_TEST_PG_VERSIONS=15 limits the
versions (default: 15 17)."""

import os
import sys
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgharness  # noqa: E402

passed = failed = 0


def check(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok - {what}")
    else:
        failed += 1
        print(f"FAIL - {what}" + (f": {detail}" if detail else ""))
    sys.stdout.flush()
    return cond


def smoke(version):
    tag = f"pg{version}"
    pg = None
    t0 = time.monotonic()
    try:
        pg = pgharness.Cluster(version=version, name=f"smoke{version}")
        pg.start()
        check(f"{tag}: started in {time.monotonic() - t0:.2f}s on port {pg.port}, "
              f"socket dir {pg.host}", pg.running)
        check(f"{tag}: data dir {pg.datadir} is 0700",
              os.stat(pg.datadir).st_mode & 0o777 == 0o700,
              oct(os.stat(pg.datadir).st_mode))
        if os.geteuid() == 0:
            uid = os.stat(pg.datadir).st_uid
            check(f"{tag}: server runs as unprivileged uid {uid}", uid != 0)

        num = int(pg.scalar("SHOW server_version_num"))
        check(f"{tag}: server_version_num {num}", num // 10000 == version, str(num))
        wal = pg.scalar("SHOW wal_level")
        check(f"{tag}: wal_level = {wal}", wal == "logical", wal)
        tcp = pg.psql("SELECT 1", tcp=True)
        check(f"{tag}: TCP 127.0.0.1:{pg.port} answers", tcp == "1", tcp)

        pg.create_db("smoke")
        pg.psql("CREATE TABLE customers (id int PRIMARY KEY, email text)", db="smoke")
        pg.psql("CREATE PUBLICATION pgsense_pub FOR ALL TABLES "
                "WITH (publish = 'insert, update')", db="smoke")
        pubs = pg.query("SELECT pubinsert, pubupdate, pubdelete FROM pg_publication "
                        "WHERE pubname = 'pgsense_pub'", db="smoke")
        check(f"{tag}: publication pgsense_pub publishes insert and update only",
              pubs == [["t", "t", "f"]], repr(pubs))
        slot = pg.psql("SELECT slot_name FROM pg_create_logical_replication_slot"
                       "('smoke', 'pgoutput')", db="smoke")
        check(f"{tag}: pgoutput slot created", slot == "smoke", slot)

        pg.psql("INSERT INTO customers VALUES (1, 'alice@example.com')", db="smoke")
        rows = pg.query("SELECT chr(get_byte(data, 0)), length(data) "
                        "FROM pg_logical_slot_peek_binary_changes('smoke', NULL, NULL, "
                        "'proto_version', '1', 'publication_names', 'pgsense_pub')", db="smoke")
        kinds = "".join(r[0] for r in rows)
        check(f"{tag}: pgoutput sent {len(rows)} messages {kinds!r}",
              len(rows) >= 3 and kinds[0] == "B" and kinds[-1] == "C" and "I" in kinds
              and "R" in kinds, repr(rows))
        insert = [r for r in rows if r[0] == "I"]
        check(f"{tag}: insert message carries the row",
              len(insert) == 1 and int(insert[0][1]) > len("alice@example.com"), repr(insert))

        pg.psql("SELECT pg_drop_replication_slot('smoke')", db="smoke")
        left = pg.scalar("SELECT count(*) FROM pg_replication_slots")
        check(f"{tag}: slot dropped", left == "0", left)

        datadir, root = pg.datadir, pg.root
        pg.stop()
        check(f"{tag}: stopped", not pg.running)
        bad = pg.unexpected_log_lines()
        check(f"{tag}: no unexpected PANIC/FATAL in the server log", not bad, "\n".join(bad))
        pg.destroy()
        check(f"{tag}: data dir removed", not os.path.exists(datadir) and not os.path.exists(root),
              datadir)
    except Exception as e:
        check(f"{tag}: {type(e).__name__}", False, str(e))
        if pg is not None:
            pg.destroy()


def main():
    versions = [int(v) for v in os.environ.get("PGSENSE_TEST_PG_VERSIONS", "15 17").split()]
    for v in versions:
        smoke(v)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
