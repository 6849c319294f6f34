#!/usr/bin/python3
"""HTTP sinks end to end (issue 7): pgsense-supervisor with a real worker and
PostgreSQL 15 posting findings to a local webhook receiver and a fake Slack
Web API (t/sinks/receiver.py, Python http.server). Checks the exact JSON and
headers of webhook POSTs, retries on 500, 429 + Retry-After and timeouts, a
durable webhook whose receiver is down for 30 s (the slot does not advance
past the undelivered finding, everything arrives after it comes back), the
queue bound counted in pgsense_alerts_dropped_total, Slack batching with
Block Kit and Retry-After, and `pgsense validate --connect` for both."""

import json
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
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
sys.path.insert(0, os.path.join(HERE, "..", "worker"))

from e2e import RULES, Supervisor, db_entry, free_port, metrics, wait_findings, write_ini  # noqa: E402
from pgharness import Cluster  # noqa: E402
from receiver import Receiver  # noqa: E402
from wtest import Runner  # noqa: E402

PGSENSE = os.path.join(os.getcwd(), "pgsense")
TABLE = ("CREATE TABLE people (id integer PRIMARY KEY, email text, note text);"
         "CREATE PUBLICATION pgsense_pub FOR ALL TABLES WITH (publish = 'insert, update');")
HEADER_SECRET = "s3cret-header-value"
FILE_SECRET = "file-secret-value"
SLACK_TOKEN = "xoxb-test-0123456789-secret"


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def insert(ctx, ids, domain="corp.io"):
    values = ",".join("(%d, 'user%d@%s')" % (i, i, domain) for i in ids)
    ctx["pg"].psql("INSERT INTO people (id, email) VALUES %s" % values, db="shop")


def jsonl_for(ctx, ids):
    """The jsonl lines (raw text) of the findings of these row ids."""
    want = set(ids)
    with open(os.path.join(ctx["dir"], "findings.jsonl")) as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    return [ln for ln in lines if json.loads(ln)["primary_keys"] and
            int(json.loads(ln)["primary_keys"][0][1]) in want]


def bodies(rec, ids):
    want = set(ids)
    out = []
    for r in rec.delivered("/hook"):
        o = json.loads(r["body"])
        if o["primary_keys"] and int(o["primary_keys"][0][1]) in want:
            out.append(r)
    return out


def ini_text(ctx, webhooks=(), slack=(), extra=""):
    text = ""
    for w in webhooks:
        text += "[[alerts.webhooks]]\n" + w + "\n"
    for s in slack:
        text += "[[alerts.slack]]\n" + s + "\n"
    return write_ini(ctx["dir"], [db_entry("shop", ctx["pg"], "shop")], http_port=ctx["http_port"],
                     extra=text + extra)


def hook_a(ctx):
    return ("name = webhook\nurl = %s/hook\ntimeout_ms = 1000\nheader = X-Pgsense-Token: %s\n"
            "header_file = X-File-Token: %s\n" % (ctx["a"].url, HEADER_SECRET, ctx["secret_file"]))


def slack_cfg(ctx, batch=5, window=500):
    return ("name = slack\ntoken_file = %s\nchannel = #pgsense-alerts\nusername = pgsense\nicon_emoji = :lock:\n"
            "batch_size = %d\nbatch_window_ms = %d\nmax_retries = 3\napi_url = %s/api\n"
            % (ctx["token_file"], batch, window, ctx["slack"].url))


def reload(ctx, ini):
    sup = ctx["sup"]
    before = sup.status()["supervisor"]["reloads_ok"]
    sup.signal(signal.SIGHUP)
    sup.wait_for(lambda: sup.status()["supervisor"]["reloads_ok"] > before, 10, "the reload")


# ---- checks ----

def t_webhook_exact_json_and_headers(ctx):
    a = ctx["a"]
    ids = [1, 2, 3]
    insert(ctx, ids)
    wait_findings(ctx["dir"], lambda fs: len(jsonl_for(ctx, ids)) == 3, what="jsonl findings")
    got = wait(lambda: len(bodies(a, ids)) == 3 and bodies(a, ids), 15, "3 webhook POSTs")
    lines = sorted(jsonl_for(ctx, ids))
    assert sorted(r["body"].decode() for r in got) == lines, (lines, [r["body"] for r in got])
    for r in got:
        h = {k.lower(): v for k, v in r["headers"].items()}
        assert r["method"] == "POST" and r["path"] == "/hook", r
        assert h.get("content-type") == "application/json", h
        assert h.get("x-pgsense-token") == HEADER_SECRET and h.get("x-file-token") == FILE_SECRET, h
    st = ctx["sup"].status()
    assert [s["name"] for s in st["sinks"]] == ["log", "jsonl", "webhook", "slack"], st["sinks"]


def t_slack_batched_block_kit(ctx):
    sl = ctx["slack"]
    ids = list(range(10, 17))  # 7 findings, batch_size 5: a message of 5, then one of 2 after the window
    insert(ctx, ids)
    posts = wait(lambda: sum(count_findings(m) for m in sl.delivered("/chat.postMessage")) >= 10 and
                 sl.delivered("/chat.postMessage"), 15, "all slack findings")
    total = sum(count_findings(m) for m in posts)
    assert total == 10, [json.loads(m["body"])["text"] for m in posts]  # 3 from the first check + 7
    sizes = [count_findings(m) for m in posts]
    assert max(sizes) == 5 and len(posts) <= 4, sizes
    m = json.loads([p for p in posts if count_findings(p) == 5][0]["body"])
    assert m["channel"] == "#pgsense-alerts" and m["username"] == "pgsense" and m["icon_emoji"] == ":lock:", m
    assert m["blocks"][0]["type"] == "header", m
    att = m["attachments"][0]
    assert att["color"] == "#E8590C" and att["blocks"][0]["type"] == "section", att  # HIGH: email
    assert att["blocks"][0]["text"]["text"].count("\n") == 4, att
    assert "`email-address`" in att["blocks"][0]["text"]["text"], att
    for p in posts:
        assert p["headers"].get("Authorization") == "Bearer " + SLACK_TOKEN
        assert p["headers"].get("Content-Type", "").startswith("application/json")


def count_findings(m):
    body = json.loads(m["body"])
    text = body["text"]
    mm = re.match(r"pgsense: (\d+) findings", text)
    if mm:
        return int(mm.group(1))
    return 1


def t_slack_single_and_429(ctx):
    sl = ctx["slack"]
    n0 = len(sl.seen("/chat.postMessage"))
    sl.plan(("429", 2))
    t0 = time.time()
    insert(ctx, [20])
    got = wait(lambda: len(sl.seen("/chat.postMessage")) >= n0 + 2 and sl.seen("/chat.postMessage")[n0:], 20,
               "the 429 and its retry")
    first, second = got[0], got[1]
    assert first["status"] == 429 and second["status"] == 200, got
    assert second["t"] - first["t"] >= 1.9, "Retry-After: 2 not honoured: %.2f s" % (second["t"] - first["t"])
    m = json.loads(second["body"])
    fields = m["attachments"][0]["blocks"][0]["fields"]
    texts = [f["text"] for f in fields]
    assert "*Rule*\n`email-address`" in texts and "*Keys*\nid=20" in texts, texts
    assert "*Table.column*\n`public.people.email`" in texts and "*Source / op*\nstream / insert" in texts, texts
    assert any(t.startswith("*Masked sample*\n`us") for t in texts), texts
    assert time.time() - t0 < 15


def t_webhook_retries(ctx):
    a = ctx["a"]
    a.plan(500, 500, ("429", 2), "hang")
    ids = [30]
    t0 = time.time()
    insert(ctx, ids)
    got = wait(lambda: bodies(a, ids), 30, "delivery after 500, 500, 429, timeout")
    tries = [r for r in a.seen("/hook") if r["t"] >= t0 and b'["id","30"]' in r["body"]]
    statuses = [r["status"] for r in tries]
    assert statuses[:3] == [500, 500, 429] and statuses[-1] == 200, statuses
    i429 = statuses.index(429)
    assert tries[i429 + 1]["t"] - tries[i429]["t"] >= 1.9, "Retry-After not honoured"
    assert len(tries) == 5, statuses  # the hang (None: no answer) was retried too
    assert len(got) == 1
    fams = metrics(ctx["http_port"])
    assert re.search(r'pgsense_alerts_total\{channel="webhook",status="error"\} ([4-9]|\d\d)', fams), fams


def confirmed_lsn(ctx):
    v = ctx["pg"].scalar("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name LIKE 'pgsense_%'")
    hi, lo = v.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def t_durable_receiver_down(ctx):
    b = Receiver(port=free_port())  # not started: connection refused
    ctx["b"] = b
    ini = ini_text(ctx, webhooks=[hook_a(ctx), "name = webhook-2\nurl = %s/hook\ndurable = true\ntimeout_ms = 1000\n"
                                  % b.url], slack=[slack_cfg(ctx)])
    reload(ctx, ini)
    ids = [40, 41, 42]
    insert(ctx, ids)
    wait_findings(ctx["dir"], lambda fs: len(jsonl_for(ctx, ids)) == 3, what="jsonl findings")
    commit_lsn = json.loads(jsonl_for(ctx, ids)[0])["lsn"]
    down_until = time.time() + 30
    while time.time() < down_until:
        c = confirmed_lsn(ctx)
        assert c <= commit_lsn, "slot confirmed %d past undelivered commit %d" % (c, commit_lsn)
        time.sleep(1)
    st = ctx["sup"].status()
    assert [s for s in st["sinks"] if s["name"] == "webhook-2"][0]["delivered"] == 0, st["sinks"]
    b.start()
    got = wait(lambda: len(bodies(b, ids)) == 3 and bodies(b, ids), 20, "the findings after the receiver came back")
    assert sorted(r["body"].decode() for r in got) == sorted(jsonl_for(ctx, ids))
    wait(lambda: confirmed_lsn(ctx) > commit_lsn, 20, "the slot to advance once delivered")


def t_validate_connect(ctx):
    d = ctx["dir"]
    bad_token = os.path.join(d, "bad-token")
    with open(bad_token, "w") as f:
        f.write("xoxb-wrong\n")
    dead = free_port()
    ini = os.path.join(d, "validate.ini")
    with open(ini, "w") as f:
        f.write("rules_file = %s\n%s\n[alerts.jsonl]\npath = v.jsonl\n"
                "[[alerts.webhooks]]\nname = live\nurl = %s/hook\n"
                "[[alerts.webhooks]]\nname = dead\nurl = http://user:pw@127.0.0.1:%d/hook?token=abc\ntimeout_ms = 2000\n"
                "[[alerts.slack]]\nname = slack-ok\ntoken_file = %s\nchannel = C1\napi_url = %s/api\n"
                "[[alerts.slack]]\nname = slack-bad\ntoken_file = %s\nchannel = C1\napi_url = %s/api\n"
                % (RULES,
                   db_entry("shop", ctx["pg"], "shop"), ctx["a"].url, dead, ctx["token_file"], ctx["slack"].url,
                   bad_token, ctx["slack"].url))
    r = subprocess.run([PGSENSE, "validate", "-c", ini, "--connect"], capture_output=True, text=True, timeout=60)
    out = r.stdout
    assert re.search(r"^\[OK\] sink live: webhook http://127\.0\.0\.1:\d+/\.\.\. answered HEAD with HTTP 200", out,
                     re.M), out
    assert re.search(r"^\[ERROR\] sink dead: webhook http://127\.0\.0\.1:%d/\.\.\. did not answer" % dead, out,
                     re.M), out
    assert re.search(r"^\[OK\] sink slack-ok: slack .* auth\.test ok: team Test Team, user pgsense-bot", out,
                     re.M), out
    assert re.search(r"^\[ERROR\] sink slack-bad: slack .* auth\.test failed: invalid_auth", out, re.M), out
    assert r.returncode == 1, (r.returncode, out)
    assert "Sanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
    for secret in ("pw@", "token=abc", SLACK_TOKEN, "xoxb-wrong"):
        assert secret not in out + r.stderr, secret
    heads = [x for x in ctx["a"].seen("/hook") if x["method"] == "HEAD"]
    assert heads, "no HEAD reached the live receiver"
    auth = [x for x in ctx["slack"].seen("/auth.test")]
    assert len(auth) == 2, auth


def t_overflow_counted(ctx):
    dead = free_port()
    ini = ini_text(ctx, webhooks=["name = webhook-3\nurl = http://127.0.0.1:%d/hook\ntimeout_ms = 500\n" % dead])
    reload(ctx, ini)
    n = 10600
    ctx["pg"].psql("INSERT INTO people (id, email) SELECT g, 'bulk' || g || '@corp.io' "
                   "FROM generate_series(100000, %d) g" % (100000 + n - 1), db="shop")

    def dropped():
        m = re.search(r'pgsense_alerts_dropped_total\{channel="webhook-3"\} (\d+)', metrics(ctx["http_port"]))
        return int(m.group(1)) if m else 0

    wait(lambda: dropped() >= n - 10000, 40, "%d overflowing findings counted dropped" % (n - 10000))
    assert re.search(r'webhook "webhook-3" .*finding\(s\) dropped', ctx["sup"].log_text()), ctx["sup"].log_tail()


def t_no_secrets_logged(ctx):
    rc = ctx["sup"].stop()
    assert rc == 0, rc
    blobs = []
    for root, _, files in os.walk(os.path.join(ctx["dir"], "log")):
        for name in files:
            blobs.append(open(os.path.join(root, name), errors="replace").read())
    blobs.append(open(os.path.join(ctx["dir"], "supervisor.stdout"), errors="replace").read())
    for secret in (HEADER_SECRET, FILE_SECRET, SLACK_TOKEN):
        for blob in blobs:
            assert secret not in blob, "secret leaked into a log"
    for blob in blobs:
        assert "Sanitizer" not in blob and "runtime error:" not in blob, "sanitizer report:\n" + blob[-3000:]


def main():
    r = Runner()
    a = Receiver().start()
    sl = Receiver(slack_token=SLACK_TOKEN).start()
    keep = os.environ.get("PGSENSE_TEST_KEEP") == "1"
    tmp = None if keep else tempfile.TemporaryDirectory()
    d = tempfile.mkdtemp(prefix="pgsense-sinks-") if keep else tmp.name
    if keep:
        print("keeping %s" % d)
    with Cluster(version=15, name="sinks") as pg:
        pg.create_db("shop")
        pg.psql(TABLE, db="shop")
        ctx = {"pg": pg, "dir": d, "a": a, "slack": sl, "http_port": free_port()}
        ctx["secret_file"] = os.path.join(d, "header-secret")
        ctx["token_file"] = os.path.join(d, "slack-token")
        with open(ctx["secret_file"], "w") as f:
            f.write(FILE_SECRET + "\n")
        with open(ctx["token_file"], "w") as f:
            f.write(SLACK_TOKEN + "\n")
        ini = ini_text(ctx, webhooks=[hook_a(ctx)], slack=[slack_cfg(ctx)])
        try:
            sup = Supervisor(d, ini)
            ctx["sup"] = sup
            sup.wait_state("shop", "streaming")
            r.check("webhook: every finding's exact JSON, Content-Type and configured headers",
                    t_webhook_exact_json_and_headers, ctx)
            r.check("slack: chat.postMessage batches with Block Kit, colour, token", t_slack_batched_block_kit, ctx)
            r.check("slack: one finding's field layout; 429 Retry-After honoured", t_slack_single_and_429, ctx)
            r.check("webhook: 500, 500, 429 Retry-After and a timeout retried, then delivered",
                    t_webhook_retries, ctx)
            r.check("durable webhook, receiver down 30 s: slot held, everything delivered after",
                    t_durable_receiver_down, ctx)
            r.check("validate --connect: webhook HEAD ok / dead port, slack auth.test ok / invalid_auth",
                    t_validate_connect, ctx)
            r.check("queue bound: overflow counted in pgsense_alerts_dropped_total", t_overflow_counted, ctx)
            r.check("SIGTERM exits 0; no header value or token in any log", t_no_secrets_logged, ctx)
        finally:
            if ctx.get("sup") and ctx["sup"].proc.poll() is None:
                ctx["sup"].stop()
            for rec in (a, sl, ctx.get("b")):
                if rec:
                    rec.stop()
    if tmp:
        tmp.cleanup()
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
