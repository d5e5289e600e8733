"""Run attrgate locally against a Cognito emulator and a local token issuer.

Started by scripts/demo (which bootstraps .venv and builds the binary first);
run with .venv/bin/python. It:

1. starts moto_server (the Cognito emulator) on a free loopback port and seeds
   a user pool with two users, ann and bob;
2. makes an RSA key, serves its JWKS over HTTP on another free loopback port,
   and mints two tokens (roles support+billing, and identity-admin);
3. writes .demo/attrgate.yaml and starts `attrgate serve` with it, waiting
   for GET /readyz to answer 200;
4. prints everything needed to try it, runs the example requests, then waits
   for Ctrl-C and stops every process it started.

With --check it verifies the results (HTTP statuses, the values in Cognito,
the audit log) and exits 0 or 1 instead of waiting. With --no-gateway it
stops after step 2 (for working on this script without the Rust binary).
With --run -- COMMAND... it skips step 4: it writes .demo/env.json (URLs, pool
id, users, tokens), runs COMMAND with ATTRGATE_DEMO_ENV pointing at that file,
stops everything, and exits with COMMAND's status (the API tests use this).
Everything it writes goes under .demo/.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".demo"
REGION = "us-east-1"
AUDIENCE = "attrgate"
CALLER = "demo-crm"
JWKS_PATH = "/.well-known/jwks.json"
DEFAULT_PORT = 8080
READY_TIMEOUT = 60.0
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    # No instance-metadata lookups: there is no EC2 here, and they only add delay.
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Variables that would make the gateway or boto3 look somewhere other than the
# demo's own config and emulator.
SCRUBBED_ENV_PREFIXES = ("ATTRGATE__", "AWS_ENDPOINT_URL")
SCRUBBED_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")

# The requests the demo prints and runs. Users and values match the seed data
# and policies/default.yaml: support may set given_name, billing may set
# custom:plan (one of free, pro, enterprise), and only identity-admin may
# verify an email address.
ALLOWED_BODY = {"attributes": {"given_name": "Annie", "custom:plan": "pro"}}
DENIED_BODY = {"attributes": {"email_verified": "true"}}


class DemoError(Exception):
    """A step failed; the message says which and why."""


def log(msg: str) -> None:
    print(f"demo: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# ports and processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers do (actix, http.server): a port held only by connections
        # in TIME_WAIT from a previous run is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def gateway_port() -> int:
    """ATTRGATE_DEMO_PORT if set, else 8080 when free (stable URLs), else any free port."""
    wanted = os.environ.get("ATTRGATE_DEMO_PORT")
    if wanted:
        port = int(wanted)
        if not port_is_free(port):
            raise DemoError(f"ATTRGATE_DEMO_PORT={port} is already in use")
        return port
    return DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path | None


class Processes:
    """The child processes of this demo; stop_all() ends every one of them."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        # setpriv --pdeathsig makes a child die with this script even if it is
        # killed with SIGKILL and never runs its cleanup.
        self.wrapper = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []

    def start(self, name: str, argv: list[str], env: dict[str, str], log_path: Path | None) -> Child:
        """Start a child; its output goes to log_path, or to this script's own if None."""
        with open(log_path, "wb") if log_path else contextlib.nullcontext() as out:
            proc = subprocess.Popen(
                self.wrapper + argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                # Its own process group: Ctrl-C reaches only this script, which
                # then stops the children (and all their own children) in order.
                start_new_session=True,
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout: float = 10.0) -> None:
        if child.proc.poll() is None:
            try:
                os.killpg(child.proc.pid, signal.SIGTERM)
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{child.name} did not stop within {timeout:.0f}s; killing it")
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
            except ProcessLookupError:
                pass
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)

    def check_alive(self) -> None:
        for child in self.children:
            code = child.proc.poll()
            if code is not None and child.log_path is not None:
                raise DemoError(
                    f"{child.name} exited with status {code}; last lines of {child.log_path}:\n"
                    + tail(child.log_path)
                )


def use_demo_environment() -> None:
    """Point this process (boto3) and every child at the demo's emulator only."""
    for key in list(os.environ):
        if key in SCRUBBED_ENV or key.startswith(SCRUBBED_ENV_PREFIXES):
            del os.environ[key]
    os.environ.update(DUMMY_AWS)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **(extra or {})}


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_until(what: str, probe, timeout: float, child: Child, procs: Processes) -> None:
    """Poll probe() until it returns True, failing early if the child exits."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            if probe():
                return
        except (OSError, urllib.error.URLError) as err:
            last = str(err)
        time.sleep(0.25)
    raise DemoError(
        f"{what} not ready after {timeout:.0f}s ({last}); last lines of {child.log_path}:\n"
        + tail(child.log_path)
    )


# --------------------------------------------------------------------------
# Cognito emulator


def start_moto(procs: Processes, moto_server: str) -> str:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    child = procs.start(
        "moto_server",
        [moto_server, "-H", "127.0.0.1", "-p", str(port)],
        child_env(),
        DEMO_DIR / "moto.log",
    )
    # Any HTTP answer at all means the server is up.
    wait_until("moto_server", lambda: http("GET", f"{endpoint}/moto-api/")[0] > 0, 30, child, procs)
    return endpoint


def cognito_client(endpoint: str):
    return boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=DUMMY_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_AWS["AWS_SECRET_ACCESS_KEY"],
    )


def seed(cognito) -> str:
    """Create the demo pool and its users; return the pool id."""

    def custom(name: str) -> dict:
        return {
            "Name": name,
            "AttributeDataType": "String",
            "Mutable": True,
            "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "256"},
        }

    pool = cognito.create_user_pool(
        PoolName="attrgate-demo",
        Schema=[custom("plan"), custom("tenant_id")],
    )["UserPool"]
    users = {
        "ann": {
            "email": "ann@example.com",
            "email_verified": "false",
            "given_name": "Ann",
            "custom:plan": "free",
            "custom:tenant_id": "t-100",
        },
        "bob": {
            "email": "bob@example.com",
            "email_verified": "false",
            "given_name": "Bob",
            "custom:plan": "free",
            "custom:tenant_id": "t-200",
        },
    }
    for username, attrs in users.items():
        cognito.admin_create_user(
            UserPoolId=pool["Id"],
            Username=username,
            UserAttributes=[{"Name": k, "Value": v} for k, v in attrs.items()],
            MessageAction="SUPPRESS",
        )
    return pool["Id"]


def user_attributes(cognito, pool_id: str, username: str) -> dict[str, str]:
    user = cognito.admin_get_user(UserPoolId=pool_id, Username=username)
    return {a["Name"]: a["Value"] for a in user["UserAttributes"]}


# --------------------------------------------------------------------------
# token issuer


def b64url_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class Issuer:
    """An RS256 signing key, its JWKS served over HTTP, and a token minter."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"demo-{secrets.token_hex(4)}"
        numbers = self.key.public_key().public_numbers()
        self.jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": self.kid,
                    "use": "sig",
                    "alg": "RS256",
                    "n": b64url_uint(numbers.n),
                    "e": b64url_uint(numbers.e),
                }
            ]
        }
        self.server: ThreadingHTTPServer | None = None
        self.url = ""

    def serve(self) -> None:
        body = json.dumps(self.jwks).encode()
        log_path = DEMO_DIR / "jwks.log"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?", 1)[0] != JWKS_PATH:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=300")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args) -> None:
                with open(log_path, "a") as f:
                    f.write(f"{self.log_date_time_string()} {fmt % args}\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="jwks", daemon=True).start()

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def mint(self, roles: list[str], lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": CALLER,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "roles": roles,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def self_check(self, token: str) -> dict:
        """Verify a token the way a relying party would: JWKS fetched over HTTP."""
        signing_key = jwt.PyJWKClient(self.jwks_url).get_signing_key_from_jwt(token)
        return jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=self.url)


# --------------------------------------------------------------------------
# gateway


def yaml_str(value: object) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(value))


def write_config(port: int, moto_endpoint: str, issuer: Issuer) -> Path:
    # Absolute paths, so the config means the same whatever the working
    # directory or however relative paths are resolved.
    config = f"""\
# Written by scripts/demo; rewritten on every run.
listen: 127.0.0.1:{port}
policy_file: {yaml_str(ROOT / "policies" / "default.yaml")}
cognito:
  endpoint_url: {moto_endpoint}
  region: {REGION}
auth:
  leeway_seconds: 30
  issuers:
    - issuer: {issuer.url}
      jwks_url: {issuer.jwks_url}
      audiences: [{AUDIENCE}]
      roles_claim: /roles
      algorithms: [RS256]
audit:
  path: {yaml_str(DEMO_DIR / "audit.jsonl")}
  hmac_key_env: ATTRGATE_AUDIT_HMAC_KEY
"""
    path = DEMO_DIR / "attrgate.yaml"
    path.write_text(config)
    return path


def start_gateway(procs: Processes, binary: Path, config: Path, base_url: str) -> Child:
    if not os.access(binary, os.X_OK):
        raise DemoError(f"{binary} not found; build it with `cargo build --locked` (scripts/demo does)")
    env = child_env({"ATTRGATE_AUDIT_HMAC_KEY": secrets.token_hex(32)})
    child = procs.start(
        "attrgate",
        [str(binary), "serve", "--config", str(config)],
        env,
        DEMO_DIR / "attrgate.log",
    )
    wait_until(
        f"attrgate ({base_url}/readyz)",
        lambda: http("GET", f"{base_url}/readyz")[0] == 200,
        READY_TIMEOUT,
        child,
        procs,
    )
    return child


def curl_line(method: str, url: str, token_file: Path, body: dict | None = None) -> str:
    parts = [
        "curl -sS -w '\\nHTTP %{http_code}\\n'",
        *([] if method == "GET" else [f"-X {method}"]),
        shlex.quote(url),
        f'-H "Authorization: Bearer $(cat {shlex.quote(str(token_file))})"',
    ]
    if body is not None:
        parts += ["-H 'Content-Type: application/json'", "-d " + shlex.quote(json.dumps(body, separators=(",", ":")))]
    return " ".join(parts)


def run_curl(line: str) -> tuple[int, str]:
    """Run a printed curl line exactly as a user would, in bash; return (status, body)."""
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise DemoError(f"curl failed ({result.returncode}): {result.stderr.strip()}")
    body, _, status = result.stdout.rstrip("\n").rpartition("\nHTTP ")
    return int(status), body


# --------------------------------------------------------------------------
# main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        default=os.environ.get("DEMO_CHECK") == "1",
        help="verify the results and exit 0/1 instead of waiting for Ctrl-C (also DEMO_CHECK=1)",
    )
    parser.add_argument(
        "--no-gateway",
        action="store_true",
        help="only start moto, seed it, serve the JWKS and mint tokens (no Rust binary needed)",
    )
    parser.add_argument(
        "--gateway-bin",
        type=Path,
        default=ROOT / "target" / "debug" / "attrgate",
        help="the attrgate binary (default: target/debug/attrgate)",
    )
    parser.add_argument(
        "--run",
        action="store_true",
        help="(last, as --run -- COMMAND [ARGS...]) start everything, run COMMAND with "
        "ATTRGATE_DEMO_ENV=.demo/env.json, stop everything, and exit with its status",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=900.0,
        help="seconds COMMAND may take before it is stopped and counted as failed (default 900)",
    )
    parser.add_argument(
        "--moto-server",
        default=str(Path(sys.executable).parent / "moto_server"),
        help="the moto_server executable (default: the one beside this Python)",
    )
    # Everything after --run is the command, whatever options it has.
    command: list[str] = []
    if "--run" in argv:
        at = argv.index("--run")
        argv, command = argv[: at + 1], argv[at + 1 :]
        command = command[1:] if command[:1] == ["--"] else command
    args = parser.parse_args(argv)
    args.run = command
    if "--run" in argv and not command:
        parser.error("--run needs a command: --run -- COMMAND [ARGS...]")
    if command and args.no_gateway:
        parser.error("--run needs the gateway; drop --no-gateway")
    return args


def write_env_file(
    base: str,
    pool_id: str,
    moto: str,
    minted: dict[str, str],
    tokens: dict[str, tuple[list[str], Path]],
    audit_log: Path,
) -> Path:
    """Everything a test needs to call the running demo, as one JSON file."""
    env = {
        "base_url": base,
        "openapi_url": f"{base}/openapi.json",
        "docs_url": f"{base}/docs/",
        "pool_id": pool_id,
        "users": ["ann", "bob"],
        "region": REGION,
        "moto_endpoint": moto,
        "tokens": minted,
        "roles": {name: roles for name, (roles, _) in tokens.items()},
        "audit_log": str(audit_log),
        # An interpreter with boto3, to look into the emulator (see cognito_client).
        "python": sys.executable,
    }
    path = DEMO_DIR / "env.json"
    path.write_text(json.dumps(env, indent=2) + "\n")
    path.chmod(0o600)
    return path


def run_command(procs: Processes, argv: list[str], env_file: Path, timeout: float) -> int:
    """Run argv against the running demo; return its exit status (124 on timeout)."""
    log(f"running {shlex.join(argv)} (ATTRGATE_DEMO_ENV={env_file.relative_to(ROOT)})")
    try:
        command = procs.start(argv[0], argv, child_env({"ATTRGATE_DEMO_ENV": str(env_file)}), None)
    except OSError as err:
        raise DemoError(f"cannot run {argv[0]}: {err}") from err
    try:
        code = command.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{argv[0]} still running after {timeout:.0f}s; stopping it")
        procs.stop(command)
        return 124
    # Whatever it left behind in its process group (a browser, say) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(command.proc.pid, signal.SIGKILL)
    procs.stop(command)
    log(f"{argv[0]} exited with status {code}")
    if code != 0:
        log(f"last lines of {DEMO_DIR / 'attrgate.log'}:\n{tail(DEMO_DIR / 'attrgate.log', 20)}")
    return code


def expect(ok: bool, what: str, failures: list[str]) -> None:
    print(f"  [{'ok' if ok else 'FAILED'}] {what}", flush=True)
    if not ok:
        failures.append(what)


def run(args: argparse.Namespace, procs: Processes, issuer: Issuer) -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    for stale in ("audit.jsonl", "jwks.log"):
        (DEMO_DIR / stale).unlink(missing_ok=True)

    log("starting the Cognito emulator (moto_server)")
    moto = start_moto(procs, args.moto_server)
    cognito = cognito_client(moto)
    pool_id = seed(cognito)
    log(f"seeded pool {pool_id} with users ann and bob")

    issuer.serve()
    tokens = {
        "support": (["support", "billing"], DEMO_DIR / "support.token"),
        "admin": (["identity-admin"], DEMO_DIR / "admin.token"),
    }
    minted: dict[str, str] = {}
    for name, (roles, path) in tokens.items():
        minted[name] = issuer.mint(roles)
        path.write_text(minted[name] + "\n")
        path.chmod(0o600)
    log(f"serving the JWKS at {issuer.jwks_url}")

    if args.no_gateway:
        claims = issuer.self_check(minted["support"])
        print(f"Cognito emulator: {moto}\nUser pool:        {pool_id}\nJWKS:             {issuer.jwks_url}")
        print(f"support token ({claims['roles']}):\n  {minted['support']}")
        print(f"identity-admin token:\n  {minted['admin']}")
        print(f"ann in Cognito: {user_attributes(cognito, pool_id, 'ann')}")
        if args.check:
            print("Checks passed (no gateway).")
            return 0
        print("Press Ctrl-C to stop.", flush=True)
        while True:
            procs.check_alive()
            time.sleep(1)

    port = gateway_port()
    base = f"http://127.0.0.1:{port}"
    config = write_config(port, moto, issuer)
    log(f"starting attrgate on {base} (config {config.relative_to(ROOT)})")
    gateway = start_gateway(procs, args.gateway_bin, config, base)

    if args.run:
        env_file = write_env_file(base, pool_id, moto, minted, tokens, DEMO_DIR / "audit.jsonl")
        return run_command(procs, args.run, env_file, args.run_timeout)

    ann_url = f"{base}/pools/{pool_id}/users/ann/attributes"
    support_file, admin_file = tokens["support"][1], tokens["admin"][1]
    allowed = curl_line("PATCH", ann_url, support_file, ALLOWED_BODY)
    denied = curl_line("PATCH", ann_url, support_file, DENIED_BODY)
    admin_verify = curl_line("PATCH", ann_url, admin_file, DENIED_BODY)
    permissions = curl_line("GET", f"{base}/permissions?pool_id={pool_id}", support_file)
    read = curl_line("GET", ann_url, support_file)
    audit_log = DEMO_DIR / "audit.jsonl"
    audit_verify = f"{shlex.quote(str(args.gateway_bin))} audit verify {shlex.quote(str(audit_log))}"

    print(
        f"""
attrgate is running at {base}

  OpenAPI       {base}/openapi.json
  Swagger UI    {base}/docs/   (Authorize with a token below)
  Metrics       {base}/metrics
  User pool     {pool_id}   users: ann, bob   (Cognito emulator at {moto})
  Config        {config}
  Audit log     {audit_log}
  Logs          {DEMO_DIR}/attrgate.log, {DEMO_DIR}/moto.log

Tokens (1 hour; issuer {issuer.url}, audience {AUDIENCE}, sub {CALLER}):
  roles support, billing   (in {support_file})
{minted["support"]}
  roles identity-admin     (in {admin_file})
{minted["admin"]}

Try, from another shell:
  # allowed: given_name through role support, custom:plan through role billing
  {allowed}
  # denied (403): only a role with `verify: [email]` may set email_verified
  {denied}
  # allowed: identity-admin may verify email
  {admin_verify}
  # what can the support token do in this pool?
  {permissions}
  # read ann as support and billing may see her (not custom:tenant_id); ETag for If-Match
  {read}
  # check the audit log's hash chain
  {audit_verify}
""",
        flush=True,
    )

    print("Running the allowed request:", flush=True)
    allowed_status, allowed_body = run_curl(allowed)
    print(f"  HTTP {allowed_status}  {allowed_body}")
    print("Running the denied request:", flush=True)
    denied_status, denied_body = run_curl(denied)
    print(f"  HTTP {denied_status}  {denied_body}", flush=True)
    print("Running the read:", flush=True)
    read_status, read_body = run_curl(read)
    print(f"  HTTP {read_status}  {read_body}\n", flush=True)

    if not args.check:
        print("Press Ctrl-C to stop attrgate, moto_server and the JWKS server.", flush=True)
        while True:
            procs.check_alive()
            time.sleep(1)

    failures: list[str] = []
    print("Checks:")
    ann = user_attributes(cognito, pool_id, "ann")
    expect(allowed_status == 200, f"allowed PATCH answered 200 (got {allowed_status})", failures)
    expect(
        ann.get("given_name") == "Annie" and ann.get("custom:plan") == "pro",
        f"Cognito has given_name=Annie, custom:plan=pro (has {ann.get('given_name')!r}, {ann.get('custom:plan')!r})",
        failures,
    )
    expect(denied_status == 403, f"denied PATCH answered 403 (got {denied_status})", failures)
    read_json = json.loads(read_body) if read_status == 200 else {}
    shown = read_json.get("attributes", {})
    expect(
        read_status == 200 and shown.get("given_name") == "Annie" and "custom:tenant_id" not in shown,
        f"the read answered 200 with given_name and without custom:tenant_id (got {read_status}: {read_body[:200]})",
        failures,
    )
    expect(
        ann.get("email_verified") == "false",
        f"Cognito still has email_verified=false (has {ann.get('email_verified')!r})",
        failures,
    )
    # Stop the gateway first, so that the audit log is complete and at rest.
    procs.stop(gateway)
    expect(audit_log.is_file() and audit_log.stat().st_size > 0, f"audit log {audit_log} has records", failures)
    verify = subprocess.run(
        [str(args.gateway_bin), "audit", "verify", str(audit_log)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    expect(
        verify.returncode == 0,
        f"`attrgate audit verify` exits 0 (got {verify.returncode}: {(verify.stdout + verify.stderr).strip()[-300:]})",
        failures,
    )
    if failures:
        print(f"\ndemo --check FAILED: {len(failures)} check(s); see {DEMO_DIR}/attrgate.log", flush=True)
        return 1
    print("\ndemo --check: all checks passed", flush=True)
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    use_demo_environment()

    # SIGTERM and SIGHUP end the demo like Ctrl-C does: through the cleanup below.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    procs = Processes()
    issuer = Issuer()
    try:
        return run(args, procs, issuer)
    except KeyboardInterrupt:
        print("\nStopping.", file=sys.stderr, flush=True)
        return 130 if args.check or args.run else 0
    except DemoError as err:
        log(f"error: {err}")
        return 1
    finally:
        # Ignore further signals while cleaning up, so that a second Ctrl-C
        # cannot leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        issuer.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
