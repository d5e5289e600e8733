"""Change events: what one webhook sink sustains, and the delay under steady load.

Started by scripts/bench-events (which builds the release binaries first).

1. Throughput. attrgate (the Cognito stub behind it, HS256 tokens, durable audit) has
   one webhook sink whose receiver is down. wrk makes a backlog of updated records for
   --backlog-seconds; then nginx starts on the sink's port, answering 204 to every POST,
   and /readyz is polled every 20 ms: events per second = events delivered between the
   first delivery and lag 0, over that time. attrgate's CPU time over the drain,
   divided by the events, is the cost of one event (signing, POST, cursor fsync per batch).
2. Delay under steady load. The receiver is now a Python server that notes when each
   event arrives; one client makes 20 updates/s for --steady-seconds and notes when it
   sent each PATCH and when its 200 came back. Delay = arrival of the event - each of
   those (matched by request_id); the outcome record is written before the 200, so an
   event can arrive before the client has read its 200 (a negative delay). /readyz's
   lag_records is sampled every 100 ms.
"""

import argparse
import base64
import http.client
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import AUDIT_KEY, HS_SECRET, POLICY, ROOT, Fleet, cpu_seconds, free_port, parse_wrk, token, wait_http, wait_port  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789!").decode()


def readyz(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
        return json.load(r)["events"][0]


class Bench(Fleet):
    """compare.py's fleet (its process handling), with a webhook sink instead of nginx in front."""

    def __init__(self, out, args):
        super().__init__(out, str(ROOT / "target/release/attrgate"))
        self.args = args
        self.ports = {name: free_port() for name in ("stub", "gate", "hook")}

    def start_gateway(self):
        p = self.ports
        self.spawn([str(ROOT / "target/release/examples/cognito_stub"), f"127.0.0.1:{p['stub']}"], "stub.log")
        (self.out / "policy").mkdir(exist_ok=True)
        (self.out / "policy" / "policy.yaml").write_text(POLICY)
        (self.out / "attrgate.yaml").write_text(f"""listen: 127.0.0.1:{p['gate']}
policy_file: {self.out}/policy/policy.yaml
cognito:
  endpoint_url: http://127.0.0.1:{p['stub']}
  quota:
    user_update_per_second: 1000000
    user_read_per_second: 1000000
auth:
  issuers:
    - issuer: https://bench-hs.local
      hmac_secret_env: ATTRGATE_BENCH_HS256_SECRET
      audiences: [attrgate]
audit:
  path: {self.out}/audit/audit.jsonl
  hmac_key_env: ATTRGATE_AUDIT_HMAC_KEY
  replica_id: bench
rate_limit:
  per_caller_per_second: 0
events:
  max_backoff_seconds: 1
  sinks:
    - name: hook
      webhook:
        url: http://127.0.0.1:{p['hook']}/hook
        secret_env: ATTRGATE_BENCH_WEBHOOK_SECRET
""")
        env = dict(os.environ, ATTRGATE_BENCH_HS256_SECRET=HS_SECRET, ATTRGATE_AUDIT_HMAC_KEY=AUDIT_KEY,
                   ATTRGATE_BENCH_WEBHOOK_SECRET=SECRET,
                   AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        env.pop("RUST_LOG", None)
        self.gate = self.spawn([self.attrgate, "serve", "--config", str(self.out / "attrgate.yaml")],
                               "attrgate.log", env=env)
        wait_http(f"http://127.0.0.1:{p['gate']}/readyz")
        wait_port(p["stub"])
        self.token = token("https://bench-hs.local", HS_SECRET, "HS256", ["support"])
        self.url = f"http://127.0.0.1:{p['gate']}/pools/us-east-1_bench/users/ann/attributes"

    def start_nginx(self):
        (self.out / "nginx").mkdir(exist_ok=True)
        (self.out / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {self.out}/nginx.pid;
error_log {self.out}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.out}/nginx/body;
    proxy_temp_path {self.out}/nginx/proxy;
    fastcgi_temp_path {self.out}/nginx/fastcgi;
    uwsgi_temp_path {self.out}/nginx/uwsgi;
    scgi_temp_path {self.out}/nginx/scgi;
    server {{
        listen 127.0.0.1:{self.ports['hook']};
        location / {{ return 204; }}
    }}
}}
""")
        proc = self.spawn(["nginx", "-c", str(self.out / "nginx.conf"), "-e", str(self.out / "nginx-error.log")], "nginx.log")
        wait_port(self.ports["hook"])
        return proc

    def throughput(self):
        env = dict(os.environ, ATTRGATE_BENCH_TOKEN=self.token)
        wrk = subprocess.run(["wrk", "-t2", "-c16", f"-d{self.args.backlog_seconds}s", "-s", str(ROOT / "scripts/bench/patch.lua"), self.url],
                             capture_output=True, text=True, env=env, check=True)
        made = parse_wrk(wrk.stdout)
        before = readyz(self.ports["gate"])
        nginx = self.start_nginx()
        first = None
        cpu_first = None
        while True:
            status = readyz(self.ports["gate"])
            now = time.monotonic()
            if first is None and status["delivered"] > 0:
                first, delivered_first, cpu_first = now, status["delivered"], cpu_seconds([self.gate.pid])
            if status["lag_records"] == 0:
                done, delivered_done, cpu_done = now, status["delivered"], cpu_seconds([self.gate.pid])
                break
            time.sleep(0.02)
        nginx.terminate()
        nginx.wait()
        events = delivered_done - delivered_first
        seconds = done - first
        return {
            "updates": made.get("requests"),
            "non2xx": made.get("non2xx", 0),
            "backlog_records": before["lag_records"],
            "events": delivered_done,
            "rate": events / seconds if seconds > 0 else float("nan"),
            "cpu_us_per_event": (cpu_done - cpu_first) * 1e6 / events if events else float("nan"),
        }

    def steady(self):
        arrivals = {}

        class Receiver(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrivals[json.loads(body)["data"]["request_id"]] = time.time()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.ports["hook"]), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        lags = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                lags.append(readyz(self.ports["gate"])["lag_records"])
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # Let the sink's retry after the previous phase pass, so the first event is not late for it.
        time.sleep(1.5)
        acked = {}
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["gate"])
        body = json.dumps({"attributes": {"given_name": "Steady"}})
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        path = self.url.split(str(self.ports["gate"]), 1)[1]
        start = time.monotonic()
        n = int(20 * self.args.steady_seconds)
        for i in range(n):
            target = start + i / 20
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent_at = time.time()
            conn.request("PATCH", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            acked[answer["request_id"]] = (sent_at, time.time())
        time.sleep(3)
        stop.set()
        sampler.join()
        server.shutdown()
        after_200 = sorted((arrivals[r] - t[1]) * 1000 for r, t in acked.items() if r in arrivals)
        after_send = sorted((arrivals[r] - t[0]) * 1000 for r, t in acked.items() if r in arrivals)
        missing = sum(1 for r in acked if r not in arrivals)
        q = statistics.quantiles(after_200, n=100)
        qs = statistics.quantiles(after_send, n=100)
        return {
            "updates": len(acked),
            "events": len(after_200),
            "missing": missing,
            "p50_ms": q[49],
            "p99_ms": q[98],
            "max_ms": after_200[-1],
            "send_p50_ms": qs[49],
            "send_p99_ms": qs[98],
            "send_max_ms": after_send[-1],
            "max_lag_records": max(lags),
        }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog-seconds", type=int, default=5)
    parser.add_argument("--steady-seconds", type=int, default=30)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or f"/tmp/attrgate-bench-events-{os.getpid()}")
    out.mkdir(parents=True, exist_ok=True)
    bench = Bench(out, args)
    try:
        bench.start_gateway()
        t = bench.throughput()
        print(f"throughput: {t['updates']} updates made by wrk in {args.backlog_seconds} s ({t['non2xx']} non-2xx), "
              f"backlog {t['backlog_records']} records; drained into nginx at {t['rate']:.0f} events/s, "
              f"{t['cpu_us_per_event']:.0f} us of attrgate CPU per event ({t['events']} events)")
        s = bench.steady()
        print(f"steady 20 updates/s for {args.steady_seconds} s: {s['updates']} updates, {s['events']} events "
              f"({s['missing']} missing); from sending the PATCH to its event at the receiver: p50 {s['send_p50_ms']:.2f} ms, "
              f"p99 {s['send_p99_ms']:.2f} ms, max {s['send_max_ms']:.2f} ms; from the client reading the 200 to the event: "
              f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, max {s['max_ms']:.2f} ms (negative: the event came first); "
              f"/readyz lag_records max {s['max_lag_records']}")
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
