"""wtest: helpers for the worker's integration tests: a running driver
(t/worker/driver, the stand-in supervisor) whose JSON lines are collected
by a thread, and a tiny check runner that prints `N passed, M failed`."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

BUILD = os.getcwd()
SRCDIR = os.environ.get("srcdir", ".")
WORKER = os.path.join(BUILD, "pgsense-worker")
DRIVER = os.path.join(BUILD, "t", "worker", "driver")
RULES = os.path.join(SRCDIR, "conf", "rules.yaml")


class Driver:
    """One pgsense-worker under the test driver."""

    def __init__(self, pg, db, rules=RULES, user="postgres", extra=(), env=None, slot="pgsense_test"):
        e = dict(os.environ)
        e["DRIVER_SLOT"] = slot
        e.update(env or {})
        args = [DRIVER, "--worker", WORKER, "--rules", rules, "--host", pg.host, "--port", str(pg.port),
                "--dbname", db, "--user", user] + list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        self.lines = []
        self.errlines = []
        self.lock = threading.Lock()
        self.t1 = threading.Thread(target=self._read, args=(self.proc.stdout, self.lines, True), daemon=True)
        self.t2 = threading.Thread(target=self._read, args=(self.proc.stderr, self.errlines, False), daemon=True)
        self.t1.start()
        self.t2.start()

    def _read(self, stream, into, is_json):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if is_json:
                try:
                    obj = json.loads(line)
                except ValueError:
                    obj = {"raw": line}
            else:
                obj = line
            with self.lock:
                into.append(obj)

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def findings(self):
        return [x for x in self.snapshot() if "rule_id" in x]

    def wait(self, pred, timeout=20.0, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred(self.snapshot()):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)
                if pred(self.snapshot()):
                    return True
                raise AssertionError("driver ended while waiting for %s; worker log:\n%s" % (what, self.log()))
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; worker log:\n%s" % (what, self.log()))

    def wait_findings(self, n, timeout=20.0):
        self.wait(lambda ls: len([x for x in ls if "rule_id" in x]) >= n, timeout, "%d findings" % n)
        return self.findings()

    def stop(self, timeout=30.0):
        """SIGTERM the driver: SHUTDOWN drain; returns the worker's exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.t1.join(5)
        self.t2.join(5)
        return self.exit_code()

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.t1.join(5)
        self.t2.join(5)

    def exit_code(self):
        for x in self.snapshot():
            if "worker_exit" in x:
                return x["worker_exit"]
            if "worker_signal" in x:
                return -x["worker_signal"]
        return None

    def exit_reason(self):
        for x in self.snapshot():
            if "exit" in x:
                return x["reason"]
        return ""

    def log(self):
        with self.lock:
            return "\n".join(self.errlines[-40:])


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a test failure of any kind
            self.failed += 1
            print("FAIL %s (%.1fs)" % (name, time.time() - t0))
            traceback.print_exc(file=sys.stdout)
        else:
            self.passed += 1
            print("ok   %s (%.1fs)" % (name, time.time() - t0))
        sys.stdout.flush()

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 0 if self.failed == 0 else 1
