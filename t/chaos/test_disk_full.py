#!/usr/bin/python3
"""Slow and failing durable sinks (issue 6).

1. Disk full: findings.jsonl lives on a 256 KiB tmpfs that fills up. The
   jsonl sink blocks, the supervisor withholds credit, the worker runs out of
   credit and stops reading, yet keeps its replication connection alive past
   wal_sender_timeout (5 s here; we wait 15 s and more), retained WAL grows and
   is reported (status.json retained_wal_bytes, the worker log's WAL retention
   messages at rising severity). Then the tmpfs is remounted larger: every
   sensitive row gets its finding, no line is cut.
2. max_retained_wal = 1MB with the disk full: the worker moves on past the
   retained WAL and counts the undelivered findings; with the sink still
   blocked, a PostgreSQL fast shutdown must complete (within 30 s), and after
   the restart and space back every row is delivered.
3. Slow fdatasync (an LD_PRELOAD shim, t/chaos/slowsync.c, built here with cc):
   nothing is lost; the latency and throughput effect is printed.

Needs root (mount -t tmpfs); skipped (exit 77) otherwise."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from chaos import (PGBENCH, Cluster, FindingsTail, HarnessError, Runner, Supervisor, db_entry, log,  # noqa: E402
                   parse_ts, percentile, write_ini)
from e2e import free_port  # noqa: E402

WAL_SENDER_TIMEOUT_S = 5
TABLE = ("CREATE TABLE t (id bigserial PRIMARY KEY, email text);"
         "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert, update');")


def sh(*cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("%s failed: %s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def fill(path, leave):
    """Write a filler file so that about `leave` bytes stay free on its filesystem."""
    st = os.statvfs(os.path.dirname(path))
    free = st.f_bavail * st.f_frsize
    with open(path, "ab") as f:
        f.write(b"\0" * max(0, free - leave))


def insert(pg, db, n, tag):
    pg.psql("INSERT INTO t (email) SELECT '%s' || g || '-' || nextval('t_id_seq') || '@full.test' "
            "FROM generate_series(1, %d) g" % (tag, n), db=db, timeout=120)


def stream_ids(items):
    return set(int(f["primary_keys"][0][1]) for f in items if f.get("source") == "stream" and f.get("primary_keys"))


def all_ids(pg, db):
    return set(int(x[0]) for x in pg.query("SELECT id FROM t", db=db))


def worker_log(d, name):
    try:
        with open(os.path.join(d, "log", "worker-%s.log" % name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def main():
    if os.geteuid() != 0:
        print("SKIP: test_disk_full needs root to mount a small tmpfs (mount -t tmpfs -o size=256k)")
        return 77
    r = Runner()
    top = tempfile.mkdtemp(prefix="pgsense-full-")
    os.chmod(top, 0o755)
    mnt = os.path.join(top, "sinkfs")
    os.mkdir(mnt)
    mounted = False
    ctx = {}
    try:
        sh("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt)
        mounted = True
        with Cluster(version=15, name="full", settings={"wal_sender_timeout": "%ds" % WAL_SENDER_TIMEOUT_S},
                     check_log_on_exit=False) as pg:
            for db in ("app", "app2", "app3", "app4"):
                pg.create_db(db)
                pg.psql(TABLE, db=db)

            # ---------------------------------------------------------- 1
            d1 = os.path.join(top, "full")
            os.mkdir(d1)
            os.symlink(os.path.join(mnt, "findings.jsonl"), os.path.join(d1, "findings.jsonl"))
            ini1 = write_ini(d1, [db_entry("app", pg, "app")],
                             extra="[alerts]\ndedup_window_seconds = 0\n[pipeline]\ncredit_bytes = 1MB\n")
            tail1 = FindingsTail(os.path.join(d1, "findings.jsonl"))

            def t_blocked():
                sup = Supervisor(d1, ini1)
                ctx["sup"] = sup
                st = sup.wait_state("app", "streaming")
                wpid = sup.worker(st, "app")["pid"]
                insert(pg, "app", 100, "a")
                deadline = time.time() + 30
                while time.time() < deadline and len(stream_ids(tail1.snapshot())) < 100:
                    tail1.poll()
                    time.sleep(0.1)
                fill(os.path.join(mnt, "filler"), 16 * 1024)
                mark = pg.log_mark()
                # 2,000 findings (~900 KB) cannot fit in the ~16 KB left
                insert(pg, "app", 2000, "b")
                sup.wait_for(lambda: "No space left on device" in sup.log_text(), 30, "the ENOSPC warning")
                t_block = time.time()
                walsender = pg.scalar("SELECT pid FROM pg_stat_replication")
                retained = []
                samples = []
                # keep writing while blocked, for 80 s: the retention messages go INFO (10 s) then WARN (60 s)
                while time.time() - t_block < 80:
                    insert(pg, "app", 3000, "c")
                    w = sup.worker(sup.status(), "app")
                    retained.append(w["retained_wal_bytes"] or 0)
                    samples.append((round(time.time() - t_block), w["retained_wal_bytes"], w["pid"], w["state"]))
                    if time.time() - t_block >= 3 * WAL_SENDER_TIMEOUT_S and "alive" not in ctx:
                        now = pg.query("SELECT pid, state FROM pg_stat_replication")
                        ctx["alive"] = (now, walsender, w["pid"], wpid, w["restarts"])
                    time.sleep(4)
                ctx["retained"] = retained
                ctx["samples"] = samples
                ctx["pglog"] = pg.log_text(since=mark)
                ctx["wlog"] = worker_log(d1, "app")
                tail1.poll()
                ctx["blocked_findings"] = tail1.count
                log("  blocked 80 s: retained_wal_bytes %s; findings.jsonl holds %d lines" % (
                    " -> ".join(str(x) for x in retained[::4] + retained[-1:]), tail1.count))

            def t_walsender_alive():
                now, walsender, wpid_now, wpid, restarts = ctx["alive"]
                assert now and now[0][0] == walsender, "walsender gone or replaced: %r (was %s)" % (now, walsender)
                assert wpid_now == wpid and restarts == 0, "worker restarted: pid %s -> %s, restarts %s" % (
                    wpid, wpid_now, restarts)
                assert "replication timeout" not in ctx["pglog"], [
                    l for l in ctx["pglog"].splitlines() if "timeout" in l]

            def t_retained_rises():
                ret = ctx["retained"]
                assert ret[-1] > ret[0] + 1024 * 1024, "retained WAL did not rise: %r" % ctx["samples"]

            def t_retention_logged():
                lines = [l for l in ctx["wlog"].splitlines() if "for the sinks to acknowledge" in l]
                for l in lines:
                    log("  worker log: " + l.strip()[:200])
                assert lines, "no WAL retention message in the worker log"
                assert re.search(r"\bWARN", lines[-1]) and not re.search(r"\bWARN", lines[0]), \
                    "severity did not rise: %r" % lines

            def t_freed():
                sup = ctx["sup"]
                sh("mount", "-o", "remount,size=64m", mnt)
                t = time.time()
                os.unlink(os.path.join(mnt, "filler"))
                want = all_ids(pg, "app")
                deadline = time.time() + 90
                while time.time() < deadline and not want <= stream_ids(tail1.snapshot()):
                    tail1.poll()
                    time.sleep(0.2)
                got = stream_ids(tail1.snapshot())
                log("  space back: %d rows, %d delivered in %.1fs after the remount; %d missing" % (
                    len(want), len(want & got), time.time() - t, len(want - got)))
                st = sup.status()
                sink = [s for s in st["sinks"] if s["name"] == "jsonl"][0]
                log("  jsonl sink: %r" % sink)
                assert not tail1.corrupt, tail1.corrupt[:3]
                assert want <= got, "%d rows never delivered, e.g. %r" % (len(want - got), sorted(want - got)[:10])
                assert sink["errors"] > 0, sink
                rc = sup.stop()
                assert rc == 0, rc

            r.check("disk full: the sink blocks, the worker runs out of credit, WAL retained for 80 s", t_blocked)
            r.check("the walsender outlives wal_sender_timeout (%d s); the worker did not restart"
                    % WAL_SENDER_TIMEOUT_S, t_walsender_alive)
            r.check("status.json retained_wal_bytes rises while blocked", t_retained_rises)
            r.check("the worker log reports the retained WAL at rising severity (INFO, then WARN)",
                    t_retention_logged)
            r.check("space back (remount 64m): every sensitive row delivered, no cut line", t_freed)

            # ---------------------------------------------------------- 2
            d2 = os.path.join(top, "maxwal")
            os.mkdir(d2)
            for p in os.listdir(mnt):
                os.unlink(os.path.join(mnt, p))
            sh("mount", "-o", "remount,size=256k", mnt)
            os.symlink(os.path.join(mnt, "findings.jsonl"), os.path.join(d2, "findings.jsonl"))
            ini2 = write_ini(d2, [db_entry("app2", pg, "app2")],
                             extra="[alerts]\ndedup_window_seconds = 0\n[pipeline]\ncredit_bytes = 1MB\n"
                                   "max_retained_wal = 1MB\n")
            tail2 = FindingsTail(os.path.join(d2, "findings.jsonl"))

            def t_max_retained():
                sup = Supervisor(d2, ini2)
                ctx["sup"] = sup
                sup.wait_state("app2", "streaming")
                fill(os.path.join(mnt, "filler"), 16 * 1024)
                insert(pg, "app2", 2000, "b")
                sup.wait_for(lambda: "No space left on device" in sup.log_text(), 30, "the ENOSPC warning")
                for _ in range(5):
                    insert(pg, "app2", 5000, "c")  # ~ 0.8 MB of WAL each
                deadline = time.time() + 40
                while time.time() < deadline and "over max_retained_wal" not in worker_log(d2, "app2"):
                    time.sleep(0.5)
                lines = [l.strip() for l in worker_log(d2, "app2").splitlines() if "max_retained_wal" in l]
                for l in lines[:3]:
                    log("  worker log: " + l[:240])
                assert lines, "no 'over max_retained_wal' message in the worker log within 40 s"
                counted = sum(int(m) for m in re.findall(r"(\d+) finding\(s\) counted as undelivered",
                                                         "\n".join(lines)))
                ctx["counted"] = counted
                # keep writing for 45 s: moving on confirms past the undelivered findings; PostgreSQL then
                # moves the slot's restart_lsn at its next running-transactions record (every 15 s)
                t_on = time.time()
                ctx["after_move"] = []
                while time.time() - t_on < 45:
                    insert(pg, "app2", 1000, "d")
                    w = sup.worker(sup.status(), "app2")
                    ctx["after_move"].append(w["retained_wal_bytes"])
                    time.sleep(2)
                ctx["wlog2"] = worker_log(d2, "app2")
                st = sup.status()
                w = sup.worker(st, "app2")
                ctx["w2"] = w
                log("  status after moving on: retained_wal_bytes %s, confirmed_lsn %s, state %s, restarts %s"
                    % (w["retained_wal_bytes"], w["confirmed_lsn"], w["state"], w["restarts"]))
                ctx["undeliv_keys"] = {k: v for k, v in w.items() if "undeliver" in k or "dropped" in k}
                ctx["lag"] = pg.scalar("SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots"
                                       " WHERE slot_name = '%s'" % w["slot"])
                log("  slot flush lag after moving on: %s bytes; undelivered in status.json: %r"
                    % (ctx["lag"], ctx["undeliv_keys"] or "(no such key)"))

            def t_undelivered_in_status():
                assert ctx.get("counted", 0) > 0, "the worker log counts no undelivered finding"
                assert ctx["undeliv_keys"], ("the worker counted %d undelivered finding(s) (log) but status.json "
                                             "has no key for them: %r" % (ctx["counted"], sorted(ctx["w2"])))

            def t_max_retained_bounds_wal():
                after = ctx.get("after_move") or [None]
                later = [l for l in ctx.get("wlog2", "").splitlines()
                         if "max_retained_wal" in l or "for the sinks to acknowledge" in l]
                log("  retained_wal_bytes in the 45 s after moving on: %s; retention messages since: %d"
                    % (" -> ".join(str(x) for x in after), len(later) - 1))
                assert int(ctx["lag"]) <= 1048576, "moving on: the slot's flush lag %s is over max_retained_wal" % ctx["lag"]
                assert after[-1] is not None and after[-1] <= 2 * 1048576, (
                    "moving on did not release WAL: retained_wal_bytes %s > 2 x max_retained_wal (1MB) 45 s later"
                    % after[-1])

            def t_pg_shutdown_while_blocked():
                # The worker is out of credit and reads nothing, but keeps sending status updates: a fast
                # shutdown's walsender waits for a flush confirmation that never comes, and nothing times out.
                t = time.time()
                try:
                    pg.stop(timeout=30)
                    ctx["shutdown"] = "stopped in %.1fs" % (time.time() - t)
                except HarnessError as e:  # the harness killed it (kill -9) after 30 s
                    ctx["shutdown"] = None
                    ctx["shutdown_err"] = str(e).splitlines()[0]
                log("  PostgreSQL fast shutdown with the sink blocked: %s" % (
                    ctx["shutdown"] or "HUNG, killed after 30 s"))
                pg.start()
                # the server is back; the sink is still blocked: the worker should notice its replication
                # connection is gone and reconnect (its side connection died too)
                t = time.time()
                deadline = t + 20
                while time.time() < deadline and pg.scalar("SELECT count(*) FROM pg_stat_replication") == "0":
                    time.sleep(0.5)
                ctx["reconnected"] = pg.scalar("SELECT count(*) FROM pg_stat_replication") != "0"
                log("  worker replication connection after the server came back: %s" % (
                    "reconnected in %.1fs" % (time.time() - t) if ctx["reconnected"] else "NONE after 20 s"))
                assert ctx["shutdown"], ("fast shutdown did not finish within 30 s while the jsonl sink was "
                                         "blocked (walsender waiting for the worker's flush)")

            def t_reconnect_while_blocked():
                assert ctx.get("reconnected"), ("20 s after the server restart, with the sink still blocked, the "
                                                "worker has no replication connection (it is paused and never "
                                                "notices the old one died)")

            def t_max_retained_after():
                sup = ctx["sup"]
                sh("mount", "-o", "remount,size=64m", mnt)
                os.unlink(os.path.join(mnt, "filler"))
                want = all_ids(pg, "app2")
                deadline = time.time() + 90
                last, since = -1, time.time()
                while time.time() < deadline and time.time() - since < 30:
                    tail2.poll()
                    if tail2.count != last:
                        last, since = tail2.count, time.time()
                    if want <= stream_ids(tail2.snapshot()):
                        break
                    time.sleep(0.3)
                got = stream_ids(tail2.snapshot())
                log("  after space is back: %d rows, %d with a finding, %d without; the worker counted %d as "
                    "undelivered" % (len(want), len(want & got), len(want - got), ctx.get("counted", 0)))
                ctx["maxwal"] = (len(want), len(want & got), len(want - got), ctx.get("counted", 0))
                assert not tail2.corrupt, tail2.corrupt[:3]
                rc = sup.stop()
                assert rc == 0, rc

            r.check("max_retained_wal = 1MB with the disk full: the worker moves on and counts the undelivered",
                    t_max_retained)
            r.check("the undelivered findings are counted in status.json", t_undelivered_in_status)
            r.check("max_retained_wal: retained WAL falls back under 2 x max_retained_wal within 45 s",
                    t_max_retained_bounds_wal)
            r.check("a PostgreSQL fast shutdown completes within 30 s while the sink is blocked",
                    t_pg_shutdown_while_blocked)
            r.check("server restarted with the sink still blocked: the worker reconnects within 20 s",
                    t_reconnect_while_blocked)
            r.check("max_retained_wal: after space is back the pipeline goes on, no cut line", t_max_retained_after)
            sh("umount", mnt)
            mounted = False

            # ---------------------------------------------------------- 3
            so = os.path.join(top, "slowsync.so")
            sh("cc", "-shared", "-fPIC", "-o", so, os.path.join(HERE, "slowsync.c"), "-ldl")

            def run_paced(tag, db, preload):
                d = os.path.join(top, "sync-" + tag)
                os.mkdir(d)
                port = free_port()
                ini = write_ini(d, [db_entry(db, pg, db)], http_port=port,
                                extra="[alerts]\ndedup_window_seconds = 0\n")
                lat = []
                tail = FindingsTail(os.path.join(d, "findings.jsonl"),
                                    on_line=lambda f, now: lat.append((now - parse_ts(f["commit_time"]),
                                                                       int(f["primary_keys"][0][1]), now)))
                env_before = os.environ.get("LD_PRELOAD")
                if preload:
                    os.environ["LD_PRELOAD"] = so
                    os.environ["SLOWSYNC_MS"] = "200"
                try:
                    sup = Supervisor(d, ini)
                finally:
                    if preload:
                        os.environ.pop("SLOWSYNC_MS", None)
                        if env_before is None:
                            os.environ.pop("LD_PRELOAD", None)
                        else:
                            os.environ["LD_PRELOAD"] = env_before
                ctx["sup"] = sup
                sup.wait_state(db, "streaming")
                tail.start(0.001)
                script = os.path.join(d, "one.sql")
                with open(script, "w") as f:
                    f.write("INSERT INTO t (email) SELECT 's' || nextval('t_id_seq') || '@sync.test';\n")
                # GET /health every 50 ms meanwhile: the event loop's responsiveness while syncs run
                health, stop_probe = [], threading.Event()

                def probe():
                    while not stop_probe.is_set():
                        t0 = time.time()
                        try:
                            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=5) as resp:
                                resp.read()
                            health.append((time.time() - t0) * 1000)
                        except OSError:
                            health.append(5000.0)
                        stop_probe.wait(0.05)
                prober = threading.Thread(target=probe, daemon=True)
                prober.start()
                try:
                    subprocess.run([PGBENCH, "-n", "-c", "4", "-j", "2", "-R", "200", "-T", "10", "-f", script],
                                   env=pg.env(db), capture_output=True, check=True, timeout=60)
                finally:
                    stop_probe.set()
                    prober.join(10)
                t_bulk = time.time()
                pg.psql("".join("INSERT INTO t (email) SELECT 'b' || nextval('t_id_seq') || '@sync.test' "
                                "FROM generate_series(1, 1000);\n" for _ in range(20)), db=db)
                want = all_ids(pg, db)
                deadline = time.time() + 60
                while time.time() < deadline and len(lat) < len(want):
                    time.sleep(0.1)
                tail.stop()
                got = set(x[1] for x in lat)
                paced = [x[0] for x in lat if x[2] < t_bulk]
                bulk_done = max(x[2] for x in lat) - t_bulk if lat else float("nan")
                rc = sup.stop()
                res = {"rows": len(want), "missing": len(want - got), "p50": percentile(paced, 50) * 1000,
                       "p99": percentile(paced, 99) * 1000, "max": max(paced) * 1000 if paced else float("nan"),
                       "bulk_s": bulk_done, "rc": rc, "n_paced": len(paced),
                       "health_p50": percentile(health, 50), "health_max": max(health) if health else float("nan"),
                       "n_health": len(health)}
                log("  fdatasync %s: %d rows, %d missing; 1-row txns at 200/s: latency p50 %.0f ms, p99 %.0f ms, "
                    "max %.0f ms; 20 x 1,000-row txns delivered %.1f s after their start (%.0f findings/s)"
                    % ("+200 ms" if preload else "normal", res["rows"], res["missing"], res["p50"], res["p99"],
                       res["max"], bulk_done, 20000 / bulk_done if bulk_done else 0))
                log("  fdatasync %s: GET /health during the load: %d requests, p50 %.1f ms, max %.1f ms"
                    % ("+200 ms" if preload else "normal", res["n_health"], res["health_p50"], res["health_max"]))
                return res

            def t_slow_sync():
                base = run_paced("base", "app3", False)
                slow = run_paced("slow", "app4", True)
                ctx["sync"] = (base, slow)
                assert base["missing"] == 0 and slow["missing"] == 0, (base, slow)
                assert slow["rc"] == 0 and base["rc"] == 0, (base, slow)
                # lines become readable at write(2), before the slow fdatasync returns: a line waits for
                # the previous batch's sync, so arrival latency spreads over 0-200 ms
                assert slow["p99"] >= 150, "the shim had no effect? %r" % slow

            r.check("slow fdatasync (+200 ms, LD_PRELOAD): nothing lost; effect measured", t_slow_sync)

            def t_loop_not_blocked():
                base, slow = ctx["sync"]
                # fdatasync runs on the jsonl sink's own thread: with every sync taking 200 ms the
                # supervisor's loop still answers at once (a sync inside the loop made the median
                # request wait for about half a sync)
                assert slow["n_health"] >= 20 and slow["health_p50"] < 50, slow

            r.check("slow fdatasync: the supervisor's event loop is not blocked (GET /health p50 < 50 ms)",
                    t_loop_not_blocked)
    finally:
        if ctx.get("sup") and ctx["sup"].proc.poll() is None:
            ctx["sup"].stop()
        if mounted:
            subprocess.run(["umount", mnt], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
