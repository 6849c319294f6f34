"""receiver: a local HTTP receiver for the HTTP sink tests (Python stdlib
only). One Receiver plays a webhook endpoint or a fake Slack Web API
(chat.postMessage, auth.test) on 127.0.0.1. Answers can be scripted per
request: 200, 500, 429 with Retry-After, a hang (the client times out),
Slack ok:false; it can stop listening for a while and come back on the
same port. Every request is recorded with its headers, body and time."""

import http.server
import json
import socketserver
import threading
import time


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Receiver:
    """answers: list of planned answers, consumed one per POST/HEAD, then 200.
    An answer is an int status, ("429", seconds) for 429 + Retry-After,
    "hang" (sleep hang_s, then close), or ("slack_error", code)."""

    def __init__(self, port=0, slack_token=None, hang_s=5.0):
        self.port = port
        self.slack_token = slack_token
        self.hang_s = hang_s
        self.lock = threading.Lock()
        self.requests = []  # every request seen: dict(method, path, headers, body, t, answered)
        self.answers = []
        self.server = None
        self.thread = None

    # -- life cycle

    def start(self):
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self):
                body = self._body()
                entry = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                         "body": body, "t": time.time(), "status": None}
                with rec.lock:
                    rec.requests.append(entry)
                    answer = rec.answers.pop(0) if rec.answers else 200
                if answer == "hang":
                    time.sleep(rec.hang_s)
                    self.close_connection = True
                    return
                slack = rec.slack_token is not None
                status, hdrs, out = 200, [], b""
                if isinstance(answer, tuple) and answer[0] == "429":
                    status, hdrs = 429, [("Retry-After", str(answer[1]))]
                elif isinstance(answer, tuple) and answer[0] == "slack_error":
                    out = json.dumps({"ok": False, "error": answer[1]}).encode()
                elif isinstance(answer, int):
                    status = answer
                if slack and status == 200 and not out:
                    auth = self.headers.get("Authorization", "")
                    if auth != "Bearer " + rec.slack_token:
                        out = json.dumps({"ok": False, "error": "invalid_auth"}).encode()
                    elif self.path.endswith("/auth.test"):
                        out = json.dumps({"ok": True, "team": "Test Team", "user": "pgsense-bot"}).encode()
                    else:
                        out = json.dumps({"ok": True, "ts": "%.6f" % time.time()}).encode()
                    hdrs.append(("Content-Type", "application/json; charset=utf-8"))
                entry["status"] = status
                self._send(status, out, hdrs)

            do_POST = _handle
            do_HEAD = _handle

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stop listening (connections refused) until start() again on the same port."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # -- scripting and reading

    def plan(self, *answers):
        with self.lock:
            self.answers.extend(answers)

    def seen(self, path_suffix=None, status=None):
        with self.lock:
            return [r for r in self.requests
                    if (path_suffix is None or r["path"].endswith(path_suffix))
                    and (status is None or r["status"] == status)]

    def delivered(self, path_suffix=None):
        """Requests answered 200 (a slack ok:false is still 200: check bodies)."""
        return self.seen(path_suffix, 200)

    def clear(self):
        with self.lock:
            self.requests = []
