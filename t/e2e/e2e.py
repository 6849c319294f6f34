"""e2e: helpers for end-to-end tests of pgsense-supervisor with real workers
and real PostgreSQL: write a pgsense.ini, run the supervisor, read its
outputs (findings.jsonl, status.json, logs, /metrics)."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

BUILD = os.getcwd()
SRCDIR = os.path.abspath(os.environ.get("srcdir", "."))
SUPERVISOR = os.path.join(BUILD, "pgsense-supervisor")
RULES = os.path.join(SRCDIR, "conf", "rules.yaml")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def db_entry(name, pg, dbname, extra=""):
    return ("[[databases]]\nname = %s\nhost = %s\nport = %d\ndbname = %s\nusername = postgres\n%s"
            % (name, pg.host, pg.port, dbname, extra))


def write_ini(d, entries, rules=RULES, http_port=None, extra=""):
    path = os.path.join(d, "pgsense.ini")
    text = "rules_file = %s\n\n%s\n[alerts.jsonl]\npath = findings.jsonl\n[log]\ndir = log\nlevel = info\n" % (
        rules, "\n".join(entries))
    if http_port:
        text += "[server]\nenabled = true\nlisten = 127.0.0.1:%d\n" % http_port
    text += extra
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)
    return path


class Supervisor:
    def __init__(self, d, ini, args=()):
        self.dir = d
        self.out = open(os.path.join(d, "supervisor.stdout"), "ab")
        self.proc = subprocess.Popen([SUPERVISOR, "-c", ini] + list(args), cwd=d, stdout=self.out,
                                     stderr=subprocess.STDOUT, env=dict(os.environ, PGSENSE_WORKER=""))
        self.wait_for(self._pidfile_is_mine, 10, "the pid file naming this supervisor")

    def _pidfile_is_mine(self):
        try:
            with open(self.path("log/pgsense.pid")) as f:
                return f.read().strip() == str(self.proc.pid)
        except OSError:
            return False

    def path(self, p):
        return os.path.join(self.dir, p)

    def wait_for(self, pred, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return
            if self.proc.poll() is not None and not pred():
                raise AssertionError("supervisor exited (%s) while waiting for %s:\n%s" %
                                     (self.proc.returncode, what, self.log_tail()))
            time.sleep(0.1)
        raise AssertionError("timed out waiting for %s:\n%s" % (what, self.log_tail()))

    def log_text(self):
        with open(self.path("log/supervisor.log"), errors="replace") as f:
            return f.read()

    def log_tail(self, n=30):
        try:
            with open(self.path("log/supervisor.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no supervisor.log)"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def status(self):
        """SIGUSR1 and read the fresh status.json."""
        p = self.path("log/status.json")
        before = os.stat(p).st_mtime_ns if os.path.exists(p) else 0
        self.signal(signal.SIGUSR1)
        self.wait_for(lambda: os.path.exists(p) and os.stat(p).st_mtime_ns != before, 10, "status.json")
        with open(p) as f:
            return json.load(f)

    def worker(self, st, name):
        return [w for w in st["workers"] if w["name"] == name][0]

    def wait_state(self, name, state, timeout=30, pred=None):
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            st = self.status()
            ws = [w for w in st["workers"] if w["name"] == name]
            if ws and ws[0]["state"] == state and (pred is None or pred(ws[0])):
                return st
            time.sleep(0.3)
        raise AssertionError("worker %s never %s: %r\n%s" % (name, state, st, self.log_tail()))

    def stop(self, timeout=35):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.out.close()
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.out.close()


def findings(d):
    p = os.path.join(d, "findings.jsonl")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_findings(d, pred, timeout=30, what="findings"):
    deadline = time.time() + timeout
    fs = []
    while time.time() < deadline:
        fs = findings(d)
        if pred(fs):
            return fs
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (have %d)" % (what, len(fs)))


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def worker_pids(sup_pid):
    out = subprocess.run(["pgrep", "-P", str(sup_pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]
