#!/usr/bin/python3
"""End to end: pgsense-supervisor with real pgsense-worker processes against
real PostgreSQL 15 and 17 (issue: the supervisor). Two databases at once,
SIGHUP add/remove/change and rejected reloads, status.json, kill -9 of a
worker and of the supervisor with nothing lost, the pid file, raw values
never leaking, /metrics parsed by prometheus_client, SIGTERM drain."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
sys.path.insert(0, os.path.join(HERE, "..", "worker"))

from e2e import (Supervisor, db_entry, findings, free_port, metrics, wait_findings,  # noqa: E402
                 worker_pids, write_ini)
from pgharness import Cluster  # noqa: E402
from wtest import Runner  # noqa: E402

RAW = ["4012888888881881", "078-05-1120", "jane.secret@corp.test"]
TABLE = ("CREATE TABLE people (id serial PRIMARY KEY, email text, note text);"
         "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert, update');")


def ids_of(fs, db_suffix, table="people"):
    return set(int(f["primary_keys"][0][1]) for f in fs
               if f["database"].endswith(db_suffix) and f["table_name"] == table and f["primary_keys"])


def t_two_databases_and_outputs(ctx):
    pg15, pg17, d = ctx["pg15"], ctx["pg17"], ctx["dir"]
    for pg in (pg15, pg17):
        pg.create_db("shop")
        pg.psql(TABLE + "INSERT INTO people (email, note) VALUES ('jane.secret@corp.test', 'card 4012888888881881')",
                db="shop")
    port = free_port()
    ctx["port"] = port
    ini = write_ini(d, [db_entry("shop15", pg15, "shop"), db_entry("shop17", pg17, "shop")], http_port=port)
    ctx["ini"] = ini
    sup = Supervisor(d, ini)
    ctx["sup"] = sup
    sup.wait_state("shop15", "streaming")
    sup.wait_state("shop17", "streaming")
    fs = wait_findings(d, lambda fs: len(fs) >= 4, what="snapshot findings of both databases")
    assert sorted((f["worker"], f["rule_id"], f["source"]) for f in fs) == [
        ("shop15", "credit-card", "snapshot"), ("shop15", "email-address", "snapshot"),
        ("shop17", "credit-card", "snapshot"), ("shop17", "email-address", "snapshot")], fs
    for pg in (pg15, pg17):
        pg.psql("INSERT INTO people (email, note) VALUES ('x', 'ssn 078-05-1120')", db="shop")
    fs = wait_findings(d, lambda fs: len(fs) >= 6, what="stream findings")
    f = [x for x in fs if x["rule_id"] == "ssn"][0]
    assert f["severity"] == "CRITICAL" and f["op"] == "insert" and f["source"] == "stream", f
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", f["commit_time"]), f
    assert f["masked_sample"] == "07*******20" and isinstance(f["lsn"], int), f
    st = sup.status()
    assert st["supervisor"]["pid"] == sup.proc.pid and st["supervisor"]["rules_loaded"] >= 5, st
    w = sup.worker(st, "shop17")
    for key in ("name", "database", "pid", "state", "restarts", "last_exit", "backoff_ms", "slot", "confirmed_lsn",
                "retained_wal_bytes", "wal_status", "events", "findings", "snapshot", "table_errors", "log_file"):
        assert key in w, (key, w)
    assert w["slot"].startswith("pgsense_") and w["snapshot"] == {"tables_done": 1, "tables_total": 1}, w
    assert [s["name"] for s in st["sinks"]] == ["log", "jsonl"], st["sinks"]


def t_metrics_parse(ctx):
    from prometheus_client.parser import text_string_to_metric_families

    def parse():
        return {f.name: f for f in text_string_to_metric_families(metrics(ctx["port"]))}

    def events_total(fams):
        return sum(s.value for s in fams["pgsense_events"].samples if s.name == "pgsense_events_total")

    deadline = time.time() + 15  # workers report their counters every 2 s
    fams = parse()
    while time.time() < deadline and events_total(fams) < 4:
        time.sleep(0.5)
        fams = parse()
    for name in ("pgsense_events", "pgsense_findings", "pgsense_alerts", "pgsense_pipeline_connected",
                 "pgsense_config_reloads", "pgsense_rules_loaded", "pgsense_queue_depth",
                 "pgsense_replication_lag_bytes", "pgsense_retained_wal_bytes", "pgsense_dedup"):
        assert name in fams, (name, sorted(fams))
    assert events_total(fams) >= 4, events_total(fams)
    connected = [s for s in fams["pgsense_pipeline_connected"].samples]
    assert len(connected) == 2 and all(s.value == 1 for s in connected), connected


def t_kill_worker(ctx):
    sup, pg17, d = ctx["sup"], ctx["pg17"], ctx["dir"]
    pid = sup.worker(sup.status(), "shop17")["pid"]
    writer = subprocess.Popen([os.path.join("/usr/lib/postgresql/15/bin", "psql"), "-X", "-q", "-d",
                               pg17.dsn("shop"), "-c",
                               "INSERT INTO people (id, email) SELECT g, 'k' || g || '@corp.io' "
                               "FROM generate_series(1000, 30999) g"])
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    writer.wait(60)
    st = sup.wait_state("shop17", "streaming", timeout=30, pred=lambda w: w["pid"] != pid)
    w = sup.worker(st, "shop17")
    assert w["restarts"] >= 1 and w["pid"] != pid, w
    assert w["last_exit"] and w["last_exit"].get("signal") == 9, w
    fs = wait_findings(d, lambda fs: set(range(1000, 31000)) <= ids_of(fs, "/shop") , timeout=60,
                       what="every row written around the kill")
    assert set(range(1000, 31000)) <= ids_of([f for f in fs if f["worker"] == "shop17"], "/shop")


def t_reload(ctx):
    sup, pg15, pg17, d = ctx["sup"], ctx["pg15"], ctx["pg17"], ctx["dir"]
    # broken config: old one keeps running, the failure is counted
    with open(ctx["ini"]) as f:
        good = f.read()
    with open(ctx["ini"], "w") as f:
        f.write(good + "\n[pipeline]\nstorre = memory\n")
    sup.signal(signal.SIGHUP)
    time.sleep(1)
    st = sup.status()
    assert st["supervisor"]["reloads_failed"] == 1, st["supervisor"]
    assert sorted(w["name"] for w in st["workers"]) == ["shop15", "shop17"]
    log = sup.log_text()
    assert re.search(r"pgsense\.ini:\d+: unknown key \"storre\"", log), sup.log_tail(60)
    # broken rules file
    bad_rules = os.path.join(d, "bad-rules.yaml")
    with open(bad_rules, "w") as f:
        f.write("rules:\n  - id: x\n    pattern: '(unclosed'\n    category: X\n")
    write_ini(d, [db_entry("shop15", pg15, "shop"), db_entry("shop17", pg17, "shop")], rules=bad_rules,
              http_port=ctx["port"])
    sup.signal(signal.SIGHUP)
    time.sleep(1)
    st = sup.status()
    assert st["supervisor"]["reloads_failed"] == 2, st["supervisor"]
    assert "bad-rules.yaml:3" in sup.log_text(), sup.log_tail(60)
    # add a database, remove one
    pg17.create_db("extra")
    pg17.psql(TABLE + "INSERT INTO people (email) VALUES ('extra@corp.io')", db="extra")
    write_ini(d, [db_entry("shop17", pg17, "shop"), db_entry("extra", pg17, "extra")], http_port=ctx["port"])
    sup.signal(signal.SIGHUP)
    st = sup.wait_state("extra", "streaming")
    assert sorted(w["name"] for w in st["workers"]) == ["extra", "shop17"], st["workers"]
    assert st["supervisor"]["reloads_ok"] >= 1
    wait_findings(d, lambda fs: any(f["worker"] == "extra" for f in fs), what="the added database's snapshot")
    assert re.search(r"WARN.*shop15.*slot.*kept|WARN.*slot.*kept.*shop15", sup.log_text()), sup.log_tail(80)
    # change a database's connection keys: that worker restarts, others do not
    pid_shop = sup.worker(st, "shop17")["pid"]
    pid_extra = sup.worker(st, "extra")["pid"]
    write_ini(d, [db_entry("shop17", pg17, "shop"),
                  db_entry("extra", pg17, "extra", extra="publication = pgsense_pub\nsslmode = disable\n")],
              http_port=ctx["port"])
    sup.signal(signal.SIGHUP)
    time.sleep(1.5)
    st = sup.wait_state("extra", "streaming", pred=lambda w: w["pid"] != pid_extra)
    assert sup.worker(st, "shop17")["pid"] == pid_shop, "unchanged database untouched"


def t_pidfile_and_kill_supervisor(ctx):
    sup, pg17, d = ctx["sup"], ctx["pg17"], ctx["dir"]
    second = subprocess.run([os.path.join(os.getcwd(), "pgsense-supervisor"), "-c", ctx["ini"]], cwd=d,
                            capture_output=True, text=True, timeout=20)
    assert second.returncode == 1 and str(sup.proc.pid) in (second.stderr + second.stdout), second
    workers = worker_pids(sup.proc.pid)
    assert len(workers) == 2, workers
    sup.kill9()
    t0 = time.time()
    while time.time() - t0 < 5 and any(os.path.exists("/proc/%d" % p) and
                                        open("/proc/%d/stat" % p).read().split()[2] != "Z" for p in workers):
        time.sleep(0.1)
    alive = [p for p in workers if os.path.exists("/proc/%d" % p) and open("/proc/%d/stat" % p).read().split()[2] != "Z"]
    assert not alive, "workers outlived the supervisor by 5 s: %r" % alive
    pg17.psql("INSERT INTO people (id, email) VALUES (50000, 'while-down@corp.io')", db="shop")
    sup = Supervisor(d, ctx["ini"])
    ctx["sup"] = sup
    sup.wait_state("shop17", "streaming")
    wait_findings(d, lambda fs: 50000 in ids_of([f for f in fs if f["worker"] == "shop17"], "/shop"),
                  what="the row written while the supervisor was down")


def t_no_raw_values_and_drain(ctx):
    sup, d = ctx["sup"], ctx["dir"]
    st = sup.status()
    text = metrics(ctx["port"]) if ctx.get("port") else ""
    rc = sup.stop()
    assert rc == 0, rc
    blobs = [text, open(os.path.join(d, "findings.jsonl"), errors="replace").read(),
             open(os.path.join(d, "log", "status.json")).read()]
    for root, _, files in os.walk(os.path.join(d, "log")):
        for name in files:
            blobs.append(open(os.path.join(root, name), errors="replace").read())
    blobs.append(open(os.path.join(d, "supervisor.stdout"), errors="replace").read())
    for raw in RAW:
        for b in blobs:
            assert raw not in b, "raw value %s leaked" % raw
    assert st["workers"], st


def main():
    r = Runner()
    with tempfile.TemporaryDirectory() as d, Cluster(version=15, name="e2e15") as pg15, \
            Cluster(version=17, name="e2e17") as pg17:
        ctx = {"pg15": pg15, "pg17": pg17, "dir": d}
        try:
            r.check("two databases (15 and 17), JSONL format, status.json", t_two_databases_and_outputs, ctx)
            r.check("/metrics parsed by prometheus_client", t_metrics_parse, ctx)
            r.check("kill -9 of a worker mid-stream: restarted, nothing lost", t_kill_worker, ctx)
            r.check("SIGHUP: broken ini and rules kept out, add/remove/change a database", t_reload, ctx)
            r.check("second supervisor refused; kill -9 of the supervisor: workers gone, nothing lost",
                    t_pidfile_and_kill_supervisor, ctx)
            r.check("no raw value in logs, sinks, status, metrics; SIGTERM drain exits 0",
                    t_no_raw_values_and_drain, ctx)
        finally:
            if ctx.get("sup") and ctx["sup"].proc.poll() is None:
                ctx["sup"].stop()
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
