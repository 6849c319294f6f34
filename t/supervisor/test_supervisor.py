#!/usr/bin/python3
"""Integration tests of pgsense-supervisor with a fake worker (no PostgreSQL).

The supervisor under test is t/supervisor/pgsense-supervisor-test: the real
supervisor/main.c and process table linked with a stub pipeline that
acknowledges everything at once. The fake worker (t/supervisor/fake_worker)
behaves according to its database name; see fake_worker.c. Binaries come
from SUPERVISOR_BIN / FAKE_WORKER, else relative to the current directory
(make check runs in the build dir). One line per check, then a summary.
"""
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("SUPERVISOR_BIN") or os.path.abspath("t/supervisor/pgsense-supervisor-test")
FAKE = os.environ.get("FAKE_WORKER") or os.path.abspath("t/supervisor/fake_worker")

RESULTS = {"passed": 0, "failed": 0}

RULES = """rules:
  - id: email
    pattern: '[a-z]+@[a-z]+\\.com'
    category: PII
"""
RULES2 = RULES + """  - id: ssn
    type: builtin
    builtin: ssn
    category: PII
"""


def check(name, cond, detail=""):
    RESULTS["passed" if cond else "failed"] += 1
    line = "[PASS] " if cond else "[FAIL] "
    line += name
    if not cond and detail:
        line += ": " + str(detail)[-800:]
    print(line, flush=True)
    return cond


def ini(dbs, extra_db=None, tail=""):
    out = ["rules_file = rules.yaml", ""]
    for name in dbs:
        out += ["[[databases]]", "name = %s" % name, "dbname = %s" % name]
        out += (extra_db or {}).get(name, [])
        out.append("")
    out += ["[log]", "dir = log", "", tail]
    return "\n".join(out) + "\n"


def restarted_after(log, marker):
    """The worker log shows marker (its SHUTDOWN reason), then a new start."""
    parts = log.split(marker, 1)
    return len(parts) == 2 and "started pid" in parts[1]


def wait_for(pred, timeout, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Sup:
    def __init__(self, dbs, extra_db=None, tail="", rules=RULES, env_extra=None):
        self.dir = tempfile.mkdtemp(prefix="pgsense-sup-")
        self.ini = os.path.join(self.dir, "pgsense.ini")
        self.rules = os.path.join(self.dir, "rules.yaml")
        self.log = os.path.join(self.dir, "log")
        self.write_ini(ini(dbs, extra_db, tail))
        with open(self.rules, "w") as f:
            f.write(rules)
        self.env = dict(os.environ, PGSENSE_WORKER=FAKE, FOO_SECRET="must-not-leak", PGSSLMODE="require")
        self.env.update(env_extra or {})
        self.proc = None

    def write_ini(self, text):
        with open(self.ini + ".tmp", "w") as f:
            f.write(text)
        os.rename(self.ini + ".tmp", self.ini)

    def start(self, *args):
        self.proc = subprocess.Popen([BIN, "-c", self.ini] + list(args), env=self.env, cwd=self.dir,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # signals before the loop runs would kill it: wait for its first log line
        wait_for(lambda: "INFO supervisor: pgsense-supervisor" in self.sup_log() or self.proc.poll() is not None,
                 10)
        return self.proc

    def run(self, *args, timeout=20):
        return subprocess.run([BIN] + list(args), env=self.env, cwd=self.dir, capture_output=True, text=True,
                              timeout=timeout)

    def sup_log(self):
        return read(os.path.join(self.log, "supervisor.log"))

    def wlog(self, name):
        return read(os.path.join(self.log, "worker-%s.log" % name))

    def status(self, pid=None):
        path = os.path.join(self.log, "status.json")
        try:
            os.unlink(path)
        except OSError:
            pass
        os.kill(pid or self.proc.pid, signal.SIGUSR1)
        if not wait_for(lambda: os.path.exists(path), 5):
            return None
        with open(path) as f:
            return json.load(f)

    def worker(self, st, name):
        for w in (st or {}).get("workers", []):
            if w["name"] == name:
                return w
        return None

    def starts(self, name):
        """Start times of worker name, from supervisor.log."""
        out = []
        for m in re.finditer(r"^(\S+) INFO proc: worker %s: started pid" % re.escape(name), self.sup_log(), re.M):
            out.append(datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp())
        return out

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        t0 = time.time()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        self.stop_s = time.time() - t0
        return rc

    def sanitizer_clean(self, label):
        """No AddressSanitizer/UBSan/LSan report in any log (sanitizer builds)."""
        bad = []
        for fn in sorted(os.listdir(self.log)) if os.path.isdir(self.log) else []:
            text = read(os.path.join(self.log, fn))
            if "Sanitizer" in text or "runtime error:" in text:
                bad.append(fn)
        check("%s: no sanitizer report in any log" % label, not bad, bad)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


SPEC_SUP_KEYS = {"pid", "started_at", "uptime_s", "rules_loaded", "reloads_ok", "reloads_failed"}
SPEC_WORKER_KEYS = {"name", "database", "pid", "state", "restarts", "last_exit", "backoff_ms", "slot",
                    "confirmed_lsn", "retained_wal_bytes", "wal_status", "events", "findings", "snapshot",
                    "table_errors", "log_file"}
STATES = {"starting", "connecting", "snapshot", "streaming", "backoff", "failed", "stopped"}


def scenario_workers():
    """Restarts, exit codes, watchdog, status, logs, rules file watch, SIGTERM."""
    names = ["ok", "crash", "fatal", "silent", "schema", "badframe", "oldproto", "snap", "rulesfail", "burst"]
    s = Sup(names)
    try:
        s.start()
        pidfile = os.path.join(s.log, "pgsense.pid")
        check("pid file holds the supervisor pid",
              wait_for(lambda: read(pidfile).strip() == str(s.proc.pid), 5), read(pidfile))
        check("ok worker started and says so in worker-ok.log", wait_for(lambda: "started pid" in s.wlog("ok"), 5),
              s.wlog("ok"))
        envline = re.search(r"env: (.*)", s.wlog("ok"))
        envnames = set(filter(None, envline.group(1).split(","))) if envline else None
        check("worker environment reduced to HOME/PGPASSFILE/PGSSL*",
              envnames is not None and "FOO_SECRET" not in envnames and "PGSSLMODE" in envnames
              and envnames <= {"HOME", "PGPASSFILE", "PGSSLMODE"}, envnames)
        check("worker holds no fd but 0-3", "fds: ok" in s.wlog("ok"), s.wlog("ok"))
        burst = wait_for(lambda: re.search(r"burst credit returned: (\d+) bytes in (\d+) CREDIT frames",
                                           s.wlog("burst")), 10)
        check("300 FINDINGS frames written at once: all their credit returned in at most 10 CREDIT frames",
              burst is not None and int(burst.group(2)) <= 10, s.wlog("burst")[-600:])
        check("crash message kept in worker-crash.log",
              wait_for(lambda: "FAKE-CRASH-MESSAGE" in s.wlog("crash"), 5), s.wlog("crash"))

        time.sleep(7.5)
        st = s.status()
        check("USR1 writes status.json", st is not None)
        st = st or {}
        check("status.json supervisor keys", SPEC_SUP_KEYS <= set(st.get("supervisor", {})), st.get("supervisor"))
        ws = st.get("workers", [])
        check("status.json lists every worker", sorted(w["name"] for w in ws) == sorted(names),
              [w["name"] for w in ws])
        check("status.json worker keys (SPEC section 5)", all(SPEC_WORKER_KEYS <= set(w) for w in ws),
              [sorted(SPEC_WORKER_KEYS - set(w)) for w in ws])
        check("status.json states are SPEC states", all(w["state"] in STATES for w in ws),
              [w["state"] for w in ws])
        check("status.json has a sinks array", isinstance(st.get("sinks"), list), st.get("sinks"))
        ok = s.worker(st, "ok") or {}
        check("ok worker streaming with its stats", ok.get("state") == "streaming" and ok.get("events", 0) > 0
              and ok.get("confirmed_lsn") == "0/16B3748" and ok.get("snapshot") == {"tables_done": 3,
                                                                                    "tables_total": 3}, ok)
        check("ok worker log_file is worker-ok.log", ok.get("log_file", "").endswith("log/worker-ok.log"), ok)
        check("status table in supervisor.log", re.search(r"status: ok\s+streaming", s.sup_log()) is not None)
        check("supervisor heartbeats reach the worker",
              wait_for(lambda: "heartbeat from the supervisor" in s.wlog("ok"), 3), s.wlog("ok"))

        fatal = s.worker(st, "fatal") or {}
        check("exit 3 -> failed with the worker's reason",
              fatal.get("state") == "failed" and fatal.get("last_exit") == {
                  "code": 3, "reason": "password authentication failed (fake)"}, fatal)
        check("failed worker retried in 5 minutes, not before",
              250000 < fatal.get("backoff_ms", 0) <= 300000 and len(s.starts("fatal")) == 1, fatal)

        old = s.worker(st, "oldproto") or {}
        check("protocol version mismatch -> failed, 'restart the supervisor', no restart loop",
              old.get("state") == "failed" and (old.get("last_exit") or {}).get("reason") == "restart the supervisor"
              and len(s.starts("oldproto")) == 1, old)

        crash = s.starts("crash")
        gaps = [b - a for a, b in zip(crash, crash[1:])]
        want = [1.0, 2.0, 4.0, 8.0]
        check("crash restarted with doubling backoff and jitter (1 s, 2 s, 4 s)",
              len(gaps) >= 3 and all(0.7 * w <= g <= w + 0.4 for g, w in zip(gaps, want)), gaps)
        cw = s.worker(st, "crash") or {}
        check("crash: restarts counted, last_exit code 1, backoff state",
              cw.get("restarts", 0) >= 3 and (cw.get("last_exit") or {}).get("code") == 1
              and cw.get("state") in ("backoff", "starting"), cw)

        sch = s.starts("schema")
        sgaps = [b - a for a, b in zip(sch, sch[1:])]
        check("exit 4 -> restarted at once, then backoff",
              len(sgaps) >= 2 and sgaps[0] < 0.5 and sgaps[1] >= 0.7, sgaps)

        bad = s.worker(st, "badframe") or {}
        check("malformed frame: logged, worker killed and restarted, supervisor alive",
              "malformed frame" in s.sup_log() and bad.get("restarts", 0) >= 1 and s.proc.poll() is None, bad)

        check("memory store: table acknowledged before a crash is handed back in START",
              "tables=1" in s.wlog("snap") and "table public.users relid 16384 state 2" in s.wlog("snap"),
              s.wlog("snap")[-600:])

        # the rules file watch: a save sends a new generation to every worker
        with open(s.rules, "w") as f:
            f.write(RULES2)
        check("rules file watch: new generation reaches the worker without SIGHUP",
              wait_for(lambda: "rules generation 2 files=1" in s.wlog("ok"), 5), s.wlog("ok")[-400:])
        check("a worker refusing validated rules is restarted",
              wait_for(lambda: "refused rules the supervisor accepted" in s.sup_log(), 5))

        # watchdog: "silent" never sends a frame after HELLO
        silent = wait_for(lambda: (lambda w: w if w and w.get("restarts", 0) >= 1 else None)(
            s.worker(s.status(), "silent")), 30, step=1.0)
        check("watchdog: silent worker SIGKILLed after 30 s and restarted",
              silent is not None and (silent.get("last_exit") or {}).get("signal") == 9
              and "watchdog" in (silent.get("last_exit") or {}).get("reason", ""), silent)
        starts = wait_for(lambda: (lambda x: x if len(x) >= 2 else None)(s.starts("silent")), 5)
        check("watchdog fired at about 30 s", len(starts) >= 2 and 29.0 <= starts[1] - starts[0] <= 33.5, starts)

        rc = s.stop()
        check("SIGTERM: exit 0", rc == 0, (rc, s.proc.stderr.read() if s.proc.stderr else ""))
        check("SIGTERM: done within 30 s", s.stop_s < 30, s.stop_s)
        check("SIGTERM: workers got SHUTDOWN drain", "shutdown mode=0" in s.wlog("ok"), s.wlog("ok")[-300:])
        check("SIGTERM: pid file removed", not os.path.exists(pidfile))
        err = s.proc.stderr.read()
        check("workers: supervisor stderr has no sanitizer report", "Sanitizer" not in err and "runtime error:"
              not in err, err[-800:])
        s.sanitizer_clean("workers")
    finally:
        s.cleanup()


def scenario_reload():
    """SIGHUP: bad config kept, add/remove/change databases, rules, restart-only keys, log reopen."""
    s = Sup(["ok", "keep", "gone"])
    try:
        s.start()
        st = wait_for(lambda: (lambda x: x if all((s.worker(x, n) or {}).get("state") == "streaming"
                                                  for n in ("ok", "keep", "gone")) else None)(s.status()), 10,
                      step=0.5)
        check("reload: three workers streaming", st is not None)
        ok_pid = (s.worker(st, "ok") or {}).get("pid")
        keep_pid = (s.worker(st, "keep") or {}).get("pid")

        # a bad config is rejected, everything kept, logs reopened anyway
        os.rename(os.path.join(s.log, "supervisor.log"), os.path.join(s.log, "supervisor.log.1"))
        os.rename(os.path.join(s.log, "worker-ok.log"), os.path.join(s.log, "worker-ok.log.1"))
        good = read(s.ini)
        s.write_ini(good.replace("[log]", "[log]\nbogus_key = 1"))
        os.kill(s.proc.pid, signal.SIGHUP)
        check("bad reload: error logged with file:line",
              wait_for(lambda: re.search(r"ERROR supervisor: .*pgsense\.ini:\d+: ", s.sup_log()), 5), s.sup_log())
        check("bad reload: reopened supervisor.log", os.path.exists(os.path.join(s.log, "supervisor.log")))
        check("bad reload: reopened worker-ok.log",
              wait_for(lambda: "ack seq" in s.wlog("ok"), 5), os.listdir(s.log))
        st = s.status() or {}
        check("bad reload: counted, workers untouched",
              st.get("supervisor", {}).get("reloads_failed") == 1
              and (s.worker(st, "ok") or {}).get("pid") == ok_pid
              and s.worker(st, "gone") is not None, st.get("supervisor"))

        # bad rules are rejected too
        with open(s.rules, "w") as f:
            f.write("rules:\n  - id: x\n    pattern: '('\n    category: PII\n")
        s.write_ini(good)
        os.kill(s.proc.pid, signal.SIGHUP)
        check("bad rules: error logged with rules.yaml:line",
              wait_for(lambda: re.search(r"rules\.yaml:\d+: ", s.sup_log()), 5), s.sup_log()[-600:])
        st = wait_for(lambda: (lambda x: x if x and x["supervisor"]["reloads_failed"] >= 2 else None)(s.status()), 5)
        check("bad rules: reload rejected (counted)", st is not None)

        # a good reload: add, remove, change a connection key, new rules, restart-only key
        with open(s.rules, "w") as f:
            f.write(RULES2)
        s.write_ini(ini(["ok", "keep", "added"], {"keep": ["password = s3cret"]},
                        tail="[server]\nlisten = 127.0.0.1:9999\n"))
        os.kill(s.proc.pid, signal.SIGHUP)
        check("reload: added database gets a worker and a log",
              wait_for(lambda: "started pid" in s.wlog("added"), 5), os.listdir(s.log))
        check("reload: removed database stopped with SHUTDOWN",
              wait_for(lambda: "reason=database removed" in s.wlog("gone"), 5), s.wlog("gone")[-300:])
        check("reload: WARN names the kept slot of the removed database",
              re.search(r"WARN proc: database gone removed.*slot pgsense_[0-9a-f]{16} is kept", s.sup_log())
              is not None)
        check("reload: [server] listen change WARNs and is kept",
              "listen changed: needs a restart" in s.sup_log())
        check("reload: new rules generation to unchanged workers",
              wait_for(lambda: "rules generation 2 files=1" in s.wlog("ok"), 5), s.wlog("ok")[-300:])
        check("reload: changed password -> keep restarted (stopped first)",
              wait_for(lambda: s.wlog("keep").count("started pid") == 2, 5)
              and "reason=connection settings changed" in s.wlog("keep"), s.wlog("keep")[-400:])
        check("reload: restarted worker got the new secret",
              "password=set" in s.wlog("keep").split("reason=connection settings changed")[-1])
        st = wait_for(lambda: (lambda x: x if x and s.worker(x, "gone") is None and (s.worker(x, "added") or {}).get(
            "state") == "streaming" else None)(s.status()), 5)
        check("reload: status lists added, not removed", st is not None,
              [w["name"] for w in (s.status() or {}).get("workers", [])])
        st = st or {}
        check("reload: untouched worker kept its pid", (s.worker(st, "ok") or {}).get("pid") == ok_pid)
        check("reload: changed worker has a new pid", (s.worker(st, "keep") or {}).get("pid") not in (None, keep_pid))
        check("reload: counted ok", st.get("supervisor", {}).get("reloads_ok") == 1, st.get("supervisor"))

        # identity change and scan filter change
        s.write_ini(ini(["ok", "keep", "added"], {"keep": ["password = s3cret", "host = otherhost"],
                                                 "ok": ["[databases.scan]", "exclude_tables = tmp_*"]},
                        tail="[server]\nlisten = 127.0.0.1:9999\n"))
        os.kill(s.proc.pid, signal.SIGHUP)
        check("reload: host change WARNs that the old slot is orphaned",
              wait_for(lambda: re.search(r"WARN proc: database keep: host or dbname changed.*orphaned",
                                         s.sup_log()), 5), s.sup_log()[-800:])
        check("reload: scan filter change restarts that worker",
              wait_for(lambda: restarted_after(s.wlog("ok"), "reason=scan filters changed"), 8),
              s.wlog("ok")[-800:])
        check("reload: new identity in the restarted worker's START",
              wait_for(lambda: "identity otherhost/keep" in s.wlog("keep"), 5), s.wlog("keep")[-300:])

        rc = s.stop()
        check("reload: SIGTERM exit 0", rc == 0, rc)
        s.sanitizer_clean("reload")
    finally:
        s.cleanup()


def scenario_cli():
    """Usage, load errors, pid file lock, daemonizing."""
    s = Sup(["ok"])
    try:
        r = s.run()
        check("no -c: exit 2", r.returncode == 2, r)
        r = s.run("-c", s.ini, "--bogus")
        check("unknown option: exit 2", r.returncode == 2, r)
        r = s.run("-c", s.ini, "extra")
        check("extra argument: exit 2", r.returncode == 2, r)

        good = read(s.ini)
        s.write_ini(good + "\n[pipeline]\nstore = nowhere\n")
        r = s.run("-c", s.ini)
        check("bad config: exit 1 naming file:line",
              r.returncode == 1 and re.search(r"pgsense\.ini:\d+:", r.stderr) is not None, r)
        s.write_ini(good)
        bad_rules = os.path.join(s.dir, "bad.yaml")
        with open(bad_rules, "w") as f:
            f.write("rules:\n  - id: a\n    category: PII\n    pattern: 'x'\n  - id: a\n    category: PII\n"
                    "    pattern: 'y'\n")
        r = s.run("-c", s.ini, "-r", bad_rules)
        check("bad rules: exit 1 naming file:line",
              r.returncode == 1 and re.search(r"bad\.yaml:\d+:", r.stderr) is not None, r)

        pidfile = os.path.join(s.dir, "run", "sup.pid")
        os.mkdir(os.path.join(s.dir, "run"))
        s.start("--pid-file", pidfile)
        check("--pid-file written", wait_for(lambda: read(pidfile).strip() == str(s.proc.pid), 5))
        r = s.run("-c", s.ini, "--pid-file", pidfile)
        check("second instance on the same pid file: exit 1 naming the pid",
              r.returncode == 1 and ("pid %d" % s.proc.pid) in r.stderr, r)
        check("first instance unaffected", s.proc.poll() is None)
        rc = s.stop(signal.SIGINT)
        check("SIGINT: exit 0", rc == 0, rc)

        r = s.run("-c", s.ini, "-d", "--pid-file", pidfile)
        check("-d: foreground part exits 0", r.returncode == 0, r)
        pid = wait_for(lambda: read(pidfile).strip(), 5)
        alive = False
        try:
            os.kill(int(pid), 0)
            alive = True
        except (ValueError, OSError):
            pass
        check("-d: daemon alive, its pid in the pid file", alive, pid)
        if alive:
            check("-d: worker started by the daemon",
                  wait_for(lambda: read(os.path.join(s.log, "worker-ok.log")).count("started pid") >= 2, 5))
            os.kill(int(pid), signal.SIGTERM)

            def gone():
                try:
                    os.kill(int(pid), 0)
                    return False
                except OSError:
                    return True
            check("-d: daemon stops on SIGTERM and removes its pid file",
                  wait_for(gone, 30) and wait_for(lambda: not os.path.exists(pidfile), 2))
        s.sanitizer_clean("cli")
    finally:
        s.cleanup()


def main():
    for path in (BIN, FAKE):
        if not os.access(path, os.X_OK):
            print("missing %s: build it first (make check)" % path)
            return 1
    only = sys.argv[1:]
    for sc in (scenario_cli, scenario_reload, scenario_workers):
        if not only or sc.__name__ in only:
            sc()
    print("%d passed, %d failed" % (RESULTS["passed"], RESULTS["failed"]))
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
