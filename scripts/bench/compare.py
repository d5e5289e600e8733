"""attrgate beside a bare nginx proxy, in one run, on the same cores.

Started by scripts/bench-compare (which builds the release binaries first). Runs:
  stub            wrk -> the Cognito stub (examples/cognito_stub.rs)
  nginx           wrk -> nginx (bare reverse proxy) -> the stub
  full-hs256      wrk -> attrgate -> the stub: allowed PATCH, HS256 token, durable audit
                  (every request to the same user: one writer per user serialises them)
  many-users      the same PATCH, each to one of 10,000 users at random
  full-rs256      the same with an RS256 token (keys from a JWKS over HTTP)
  dry-run         ?dry_run=true: JWT, input rules, policy, one audit record, no Cognito call
  denied-403      a role with no grant in the pool: 403 and its audit record
  unauth-401      a token with a bad signature: 401
  read-get        GET …/attributes: JWT, policy, AdminGetUser, the filter, one audit record
  if-match        the allowed PATCH of full-hs256 with If-Match: one AdminGetUser more
alternating the configurations over ROUNDS rounds, at 1 and 64 connections. For each
it reports req/s, p50/p99 and the CPU time of each process (utime + stime from
/proc/PID/stat, all threads) divided by the requests answered: the median of the rounds.
"""

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")
HS_SECRET = "bench-secret-bench-secret-bench-secret-0123"
AUDIT_KEY = "bench-audit-key-bench-audit-key-0123456789"
POLICY = """version: 1
protected: [sub]
roles:
  support:
    update: [given_name, family_name, nickname]
    view: [given_name, family_name, nickname, "custom:tenant_id"]
  readonly:
    pools: ["eu-west-1_*"]
    update: [locale]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids):
    """utime + stime of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


def wait_http(url, timeout=30):
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"bench-compare: {url} did not answer 200")


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench-compare: nothing listens on port {port}")


def curl_args(url, token, script):
    """What curl must send to make the request a wrk script sends."""
    args = ["-H", f"Authorization: Bearer {token}", url]
    if script == "get.lua":
        return args
    # patch-many.lua picks its user per request; the check sends one of them.
    args += ["-X", "PATCH", "-H", "Content-Type: application/json", "-d", '{"attributes":{"given_name":"Bench"}}']
    if script == "patch-if-match.lua":
        args += ["-H", f"If-Match: {os.environ['ATTRGATE_BENCH_IF_MATCH']}"]
    return args


def status_of(url, token, script):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *curl_args(url, token, script)],
                         capture_output=True, text=True)
    return int(out.stdout or 0)


def etag_of(url, token):
    """The ETag a read of the stub's user gives (for If-Match)."""
    out = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", url],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.lower().startswith("etag:"):
            return line.split(":", 1)[1].strip()
    sys.exit(f"bench-compare: no ETag from {url}")


def parse_wrk(text):
    result = {}
    for line in text.splitlines():
        words = line.split()
        if line.strip().startswith("Requests/sec:"):
            result["rps"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            result["p50" if words[0] == "50%" else "p99"] = to_ms(words[1])
        elif "requests in" in line:
            result["requests"] = int(words[0])
        elif line.strip().startswith("Non-2xx"):
            result["non2xx"] = int(words[-1])
    return result


def to_ms(value):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


def rsa_jwks(directory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()

    def b64(n):
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    jwks = {"keys": [{"kty": "RSA", "kid": "bench-rsa", "alg": "RS256", "use": "sig",
                      "n": b64(numbers.n), "e": b64(numbers.e)}]}
    (directory / "jwks.json").write_text(json.dumps(jwks))
    return key


def token(issuer, key, alg, roles, kid=None):
    now = int(time.time())
    claims = {"iss": issuer, "aud": "attrgate", "sub": "bench", "exp": now + 3600, "roles": roles}
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


class Fleet:
    """The stub, nginx in front of it, a JWKS server and attrgate."""

    def __init__(self, out, attrgate):
        self.out = out
        self.attrgate = attrgate
        self.procs = []
        self.ports = {name: free_port() for name in ("stub", "nginx", "jwks", "gate")}

    def spawn(self, args, log, **kw):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.out / log, "w"), **kw)
        self.procs.append(proc)
        return proc

    def start(self):
        p = self.ports
        self.stub = self.spawn([str(ROOT / "target/release/examples/cognito_stub"), f"127.0.0.1:{p['stub']}"], "stub.log")
        (self.out / "nginx").mkdir(exist_ok=True)
        (self.out / "nginx.conf").write_text(f"""
daemon off;
worker_processes auto;
pid {self.out}/nginx.pid;
error_log {self.out}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {self.out}/nginx-access.log;
    client_body_temp_path {self.out}/nginx/body;
    proxy_temp_path {self.out}/nginx/proxy;
    fastcgi_temp_path {self.out}/nginx/fastcgi;
    uwsgi_temp_path {self.out}/nginx/uwsgi;
    scgi_temp_path {self.out}/nginx/scgi;
    upstream stub {{ server 127.0.0.1:{p['stub']}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{p['nginx']};
        location / {{
            proxy_pass http://stub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
        self.nginx = self.spawn(["nginx", "-c", str(self.out / "nginx.conf"), "-e", str(self.out / "nginx-error.log")], "nginx.log")
        jwks_dir = self.out / "jwks"
        jwks_dir.mkdir(exist_ok=True)
        self.rsa = rsa_jwks(jwks_dir)
        self.spawn([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(p["jwks"])], "jwks.log", cwd=jwks_dir)
        # As deployed: the policy in a directory of its own (attrgate watches it), the
        # log and the audit log elsewhere.
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
    - issuer: https://bench-rs.local
      jwks_url: http://127.0.0.1:{p['jwks']}/jwks.json
      audiences: [attrgate]
audit:
  path: {self.out}/audit.jsonl
  hmac_key_env: ATTRGATE_AUDIT_HMAC_KEY
rate_limit:
  per_caller_per_second: 0
""")
        env = dict(os.environ, ATTRGATE_BENCH_HS256_SECRET=HS_SECRET, ATTRGATE_AUDIT_HMAC_KEY=AUDIT_KEY,
                   AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        env.pop("RUST_LOG", None)  # the default log level: one access line per request
        self.gate = self.spawn([self.attrgate, "serve", "--config", str(self.out / "attrgate.yaml")],
                               "attrgate.log", env=env)
        wait_http(f"http://127.0.0.1:{p['gate']}/readyz")
        wait_port(p["nginx"])
        wait_port(p["stub"])
        time.sleep(0.3)
        self.nginx_pids = [self.nginx.pid] + children(self.nginx.pid)

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def configurations(fleet):
    p = fleet.ports
    path = "/pools/us-east-1_bench/users/ann/attributes"
    gate = f"http://127.0.0.1:{p['gate']}{path}"
    hs = token("https://bench-hs.local", HS_SECRET, "HS256", ["support"])
    rs = token("https://bench-rs.local", fleet.rsa, "RS256", ["support"], kid="bench-rsa")
    denied = token("https://bench-hs.local", HS_SECRET, "HS256", ["readonly"])
    forged = token("https://bench-hs.local", "not-the-secret-not-the-secret-not-the-secret", "HS256", ["support"])
    stub = [("stub", fleet.stub.pid)]
    os.environ["ATTRGATE_BENCH_IF_MATCH"] = etag_of(gate, hs)
    return [
        ("stub", f"http://127.0.0.1:{p['stub']}{path}", hs, 200, stub, "patch.lua"),
        ("nginx", f"http://127.0.0.1:{p['nginx']}{path}", hs, 200, [("nginx", fleet.nginx_pids)] + stub, "patch.lua"),
        ("full-hs256", gate, hs, 200, [("attrgate", fleet.gate.pid)] + stub, "patch.lua"),
        ("many-users", gate, hs, 200, [("attrgate", fleet.gate.pid)] + stub, "patch-many.lua"),
        ("full-rs256", gate, rs, 200, [("attrgate", fleet.gate.pid)] + stub, "patch.lua"),
        ("dry-run", gate + "?dry_run=true", hs, 200, [("attrgate", fleet.gate.pid)], "patch.lua"),
        ("denied-403", gate, denied, 403, [("attrgate", fleet.gate.pid)], "patch.lua"),
        ("unauth-401", gate, forged, 401, [("attrgate", fleet.gate.pid)], "patch.lua"),
        ("read-get", gate, hs, 200, [("attrgate", fleet.gate.pid)] + stub, "get.lua"),
        ("if-match", gate, hs, 200, [("attrgate", fleet.gate.pid)] + stub, "patch-if-match.lua"),
    ]


def run_one(url, tok, connections, duration, processes, script):
    pids = {name: (p if isinstance(p, list) else [p]) for name, p in processes}
    before = {name: cpu_seconds(ps) for name, ps in pids.items()}
    env = dict(os.environ, ATTRGATE_BENCH_TOKEN=tok)
    threads = "1" if connections < 2 else "2"
    out = subprocess.run(
        ["wrk", "-t", threads, "-c", str(connections), "-d", f"{duration}s", "--latency",
         "-s", str(ROOT / "scripts/bench" / script), url],
        capture_output=True, text=True, env=env, check=True).stdout
    after = {name: cpu_seconds(ps) for name, ps in pids.items()}
    result = parse_wrk(out)
    n = max(result.get("requests", 0), 1)
    result["cpu_us"] = {name: (after[name] - before[name]) * 1e6 / n for name in pids}
    return result


def median_of(results):
    keys = ("rps", "p50", "p99")
    merged = {k: statistics.median(r[k] for r in results) for k in keys}
    merged["cpu_us"] = {name: statistics.median(r["cpu_us"][name] for r in results) for name in results[0]["cpu_us"]}
    merged["non2xx"] = sum(r.get("non2xx", 0) for r in results)
    return merged


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "target/bench-compare"))
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="1,64")
    parser.add_argument("--only", default="", help="comma-separated configuration names")
    parser.add_argument("--attrgate", default=str(ROOT / "target/release/attrgate"),
                        help="the attrgate binary (to compare builds in the same layout)")
    parser.add_argument("--perf", default="", help="instead: profile attrgate under this configuration with perf")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    args.out = str(out)
    out.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(out, args.attrgate)
    try:
        fleet.start()
        configs = configurations(fleet)
        if args.only:
            configs = [c for c in configs if c[0] in args.only.split(",")]
        for name, url, tok, expect, _, script in configs:
            got = status_of(url, tok, script)
            if got != expect:
                sys.exit(f"bench-compare: {name} answered {got}, expected {expect}")
        if args.perf:
            profile(fleet, out, next(c for c in configs if c[0] == args.perf), args.duration)
            return
        connections = [int(c) for c in args.connections.split(",")]
        raw = {}
        for rnd in range(1, args.rounds + 1):
            for c in connections:
                for name, url, tok, _, procs, script in configs:
                    r = run_one(url, tok, c, args.duration, procs, script)
                    raw.setdefault((name, c), []).append(r)
                    cpu = " ".join(f"{k}={v:.0f}" for k, v in r["cpu_us"].items())
                    print(f"round {rnd} c={c:<3} {name:<11} {r['rps']:>9.0f} req/s  p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  cpu us/req {cpu}", flush=True)
        report(raw, connections, configs, args)
        gate_log = out / "attrgate.log"
        print(f"\nattrgate log lines: {sum(1 for _ in open(gate_log))}; audit records: {sum(1 for _ in open(out / 'audit.jsonl'))}")
    finally:
        fleet.stop()


def profile(fleet, out, config, duration):
    """`perf record -g` of attrgate while wrk sends this configuration at 64 connections."""
    name, url, tok, _, _, script = config
    data = out / f"perf-{name}.data"
    perf = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,32768", "-p", str(fleet.gate.pid), "-o", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    env = dict(os.environ, ATTRGATE_BENCH_TOKEN=tok)
    subprocess.run(["wrk", "-t", "2", "-c", "64", "-d", f"{duration}s", "-s", str(ROOT / "scripts/bench" / script), url],
                   capture_output=True, env=env, check=True)
    perf.send_signal(2)
    perf.wait()
    flat = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,symbol", "--stdio", "-g", "none",
                           "--percent-limit", "0.5"], capture_output=True, text=True).stdout
    (out / f"perf-{name}.txt").write_text(flat)
    print(flat)


def report(raw, connections, configs, args):
    med = {key: median_of(results) for key, results in raw.items()}
    lines = [f"\n## median of {args.rounds} rounds, {args.duration} s each ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)\n"]
    for c in connections:
        lines.append(f"\n### {c} connection(s)\n")
        lines.append("| configuration | req/s | p50 ms | p99 ms | CPU us/request (per process) | req/s vs nginx | CPU vs nginx |")
        lines.append("|---|---:|---:|---:|---|---:|---:|")
        ngx = med.get(("nginx", c))
        for name, *_ in configs:
            m = med[(name, c)]
            cpu = ", ".join(f"{k} {v:.0f}" for k, v in m["cpu_us"].items())
            own = next(iter(m["cpu_us"].values()))
            ratio = f"{m['rps'] / ngx['rps']:.3f}" if ngx else ""
            cpu_ratio = f"{own / ngx['cpu_us']['nginx']:.1f}x" if ngx and name not in ("stub",) else ""
            lines.append(f"| {name} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {cpu} | {ratio} | {cpu_ratio} |")
        if ngx and ("full-hs256", c) in med:
            full = med[("full-hs256", c)]
            lines.append(f"\nLatency added over nginx on the full path (HS256): p50 +{full['p50'] - ngx['p50']:.3f} ms, p99 +{full['p99'] - ngx['p99']:.3f} ms")
        if ("full-hs256", c) in med and ("if-match", c) in med:
            full, cond = med[("full-hs256", c)], med[("if-match", c)]
            lines.append(f"\nLatency added by If-Match (one AdminGetUser more): p50 +{cond['p50'] - full['p50']:.3f} ms, p99 +{cond['p99'] - full['p99']:.3f} ms")
    text = "\n".join(lines)
    print(text)
    (Path(args.out) / "report.md").write_text(text + "\n")
    serial = {f"{k[0]}@{k[1]}": v for k, v in med.items()}
    (Path(args.out) / "report.json").write_text(json.dumps(serial, indent=2))


if __name__ == "__main__":
    main()
