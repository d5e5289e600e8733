"""Cross-checks of deploy/kubernetes/ that a schema cannot make, for scripts/test-deploy.

The schemas (kubernetes-validate) say that each object is well formed. This says
that the objects fit each other and fit attrgate: the config file the Deployment
passes is the one the config ConfigMap holds, the policy file named in it is a key
of the policy ConfigMap mounted as a directory where it says, the audit log is on
the audit volume, the Secret provides the HMAC key variable, the Service and the
PodDisruptionBudget select the gateway's pods, both redis_url keys point at the
Redis Service and cognito.quota.replicas is the Deployment's replica count, and so on.

It also extracts what scripts/test-deploy hands to the attrgate binary, into OUT:
  attrgate.yaml               the config file, verbatim from configmap-config.yaml
  policy.yaml                 the policy file, verbatim from configmap-policy.yaml
  negative-top-level.yaml     the config plus one unknown top-level key
  negative-nested.yaml        the config plus one unknown key under `audit`
  overrides.env               ATTRGATE__* variables the Deployment sets (NUL-separated)
  secret-placeholder          the example Secret's HMAC key value
  hmac-key-env                the name of that variable (audit.hmac_key_env)
  manifest-files              the manifests the schema step validates (one a line)
  manifest-documents          how many objects they hold, each to be reported as passed

Usage: check-deploy-manifests.py MANIFEST_DIR OUT_DIR
Prints one line per check ("ok: ..." or "FAIL: ...") and a closing
"cross-checks: N passed, N failed" line; exits 1 if any check failed.
"""

import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml

NAMESPACE = "attrgate"
# Files of the directory that are not applied by `kubectl apply -k`, and why.
NOT_IN_KUSTOMIZATION = {
    "kustomization.yaml": "kustomize's own file",
    "secret.yaml": "an example; the real Secret is created out of band",
    "servicemonitor.yaml": "needs the Prometheus Operator's CRD",
}
# Objects with no schema in kubernetes-validate (CRDs, kustomize's own file).
NOT_SCHEMA_VALIDATED = {"kustomization.yaml", "servicemonitor.yaml"}
NEGATIVE_KEY = "not_a_real_attrgate_key"
# The label value (app.kubernetes.io/component) of redis.yaml's objects.
REDIS_COMPONENT = "quota-store"


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, condition, what, why=""):
        if condition:
            self.passed += 1
            print(f"ok: {what}")
        else:
            self.failed += 1
            print(f"FAIL: {what}" + (f": {why}" if why else ""))
        return bool(condition)


def load_documents(path):
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def one(objects, kind, name):
    found = [o for o in objects if o.get("kind") == kind and o["metadata"].get("name") == name]
    if len(found) != 1:
        raise SystemExit(f"FAIL: expected exactly one {kind}/{name}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def under(path, directory):
    path, directory = PurePosixPath(path), PurePosixPath(directory)
    return path.is_absolute() and directory in path.parents


def check_files(c, directory, kustomization):
    present = {p.name for p in directory.glob("*.yaml")}
    listed = kustomization.get("resources", [])
    expected = sorted(present - set(NOT_IN_KUSTOMIZATION))
    c.check(
        sorted(listed) == expected and len(listed) == len(set(listed)),
        "kustomization.yaml lists every manifest except secret.yaml and servicemonitor.yaml",
        f"lists {sorted(listed)}, expected {expected}",
    )
    for name in ("secret.yaml", "servicemonitor.yaml"):
        c.check(name in present, f"{name} exists (kept out of kustomization.yaml on purpose)")


def check_namespaces(c, objects):
    wrong = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objects
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != NAMESPACE
    ]
    c.check(not wrong, f"every namespaced object names namespace {NAMESPACE}", f"not: {wrong}")
    c.check(
        any(o["kind"] == "Namespace" and o["metadata"]["name"] == NAMESPACE for o in objects),
        f"namespace.yaml creates namespace {NAMESPACE}",
    )


def mounted_key(c, objects, container, pod, volume, path, what):
    """Checks that `path` is a key of the ConfigMap mounted (as a directory) at its parent;
    returns the mount and the ConfigMap."""
    mount, source = volume_mount(container, pod, volume)
    config_map = one(objects, "ConfigMap", source["configMap"]["name"])
    c.check(
        str(path.parent) == mount["mountPath"] and path.name in config_map.get("data", {}),
        f"{what} {path} is a key of ConfigMap {config_map['metadata']['name']}, "
        f"mounted at {mount['mountPath']}",
    )
    return mount, config_map


def volume_mount(container, pod, volume_name):
    mounts = [m for m in container.get("volumeMounts", []) if m["name"] == volume_name]
    volumes = [v for v in pod.get("volumes", []) if v["name"] == volume_name]
    if len(mounts) != 1 or len(volumes) != 1:
        raise SystemExit(f"FAIL: volume {volume_name} must be defined and mounted once")
    return mounts[0], volumes[0]


def check_security(c, pod, container):
    sc = container.get("securityContext", {})
    psc = pod.get("securityContext", {})
    c.check(
        sc.get("runAsNonRoot") is True
        and sc.get("runAsUser") == 10001
        and sc.get("runAsGroup") == 10001
        and psc.get("runAsNonRoot") is True,
        "the gateway runs as non-root uid/gid 10001 (the image's user)",
    )
    c.check(
        sc.get("readOnlyRootFilesystem") is True
        and sc.get("allowPrivilegeEscalation") is False
        and sc.get("capabilities", {}).get("drop") == ["ALL"]
        and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "read-only root fs, no privilege escalation, capabilities dropped, RuntimeDefault seccomp",
    )


def check_gateway(c, objects, secrets, out):
    deployment = one(objects, "Deployment", "attrgate")
    pod = deployment["spec"]["template"]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    containers = {ct["name"]: ct for ct in pod["containers"]}
    gateway = containers["attrgate"]

    c.check(deployment["spec"].get("replicas") == 3, "the Deployment runs 3 replicas")
    c.check(
        selects(deployment["spec"]["selector"]["matchLabels"], pod_labels),
        "the Deployment's selector matches its pod labels",
    )
    check_security(c, pod, gateway)

    # The config file: args -> mounted config ConfigMap -> its key.
    args = gateway.get("args", [])
    ok = len(args) == 3 and args[:2] == ["serve", "--config"]
    c.check(ok, "the container runs `serve --config FILE`", f"args are {args}")
    config_path = PurePosixPath(args[2] if ok else "/")
    config_mount, config_map = mounted_key(c, objects, gateway, pod, "config", config_path, "--config")
    config_text = config_map["data"].get(config_path.name, "")
    config = yaml.safe_load(config_text) or {}

    # The policy: policy_file -> a directory mount (no subPath) of the policy ConfigMap.
    policy_path = PurePosixPath(str(config.get("policy_file", "")))
    policy_mount, policy_map = mounted_key(c, objects, gateway, pod, "policy", policy_path, "policy_file")
    c.check(
        "subPath" not in config_mount and "subPath" not in policy_mount
        and "subPathExpr" not in config_mount and "subPathExpr" not in policy_mount,
        "both ConfigMaps are mounted as directories (no subPath), so updates reach the pod",
    )
    c.check(
        config_mount.get("readOnly") is True and policy_mount.get("readOnly") is True,
        "the ConfigMap mounts are read-only",
    )

    # The audit log: on the audit volume.
    audit = config.get("audit", {}) or {}
    audit_mount, audit_volume = volume_mount(gateway, pod, "audit")
    c.check(
        under(str(audit.get("path", "")), audit_mount["mountPath"]),
        f"audit.path {audit.get('path')} is on the audit volume ({audit_mount['mountPath']})",
    )
    c.check(
        "replica_id" not in audit
        and not any(e["name"] == "ATTRGATE__AUDIT__REPLICA_ID" and "value" in e for e in gateway.get("env", [])),
        "audit.replica_id is not one fixed value for every pod (the default is the pod's host name)",
    )
    c.check(
        "emptyDir" in audit_volume or "persistentVolumeClaim" in audit_volume,
        "the audit volume is an emptyDir or a PersistentVolumeClaim",
    )
    c.check(
        any(m["mountPath"] == "/tmp" for m in gateway.get("volumeMounts", [])),
        "/tmp is a writable volume (the root filesystem is read-only)",
    )

    # The HMAC key variable comes from the Secret.
    key_env = audit.get("hmac_key_env", "")
    secret = one(secrets, "Secret", "attrgate-secrets")
    from_secret = [
        e["secretRef"]["name"] for e in gateway.get("envFrom", []) if "secretRef" in e
    ]
    c.check(
        secret["metadata"]["name"] in from_secret
        and key_env in secret.get("stringData", {}) | secret.get("data", {}),
        f"audit.hmac_key_env {key_env} comes from Secret {secret['metadata']['name']} (envFrom)",
    )
    placeholder = (secret.get("stringData") or {}).get(key_env, "")
    (out / "secret-placeholder").write_text(placeholder, encoding="utf-8")
    (out / "hmac-key-env").write_text(key_env, encoding="utf-8")

    # Each webhook sink's signing secret comes from the Secret as well.
    hooks = [
        (sink.get("name"), sink["webhook"].get("secret_env", ""))
        for sink in (config.get("events") or {}).get("sinks", [])
        if sink.get("webhook")
    ]
    for name, env in hooks:
        c.check(
            secret["metadata"]["name"] in from_secret
            and env in secret.get("stringData", {}) | secret.get("data", {}),
            f"events sink {name}: webhook.secret_env {env} comes from Secret {secret['metadata']['name']} (envFrom)",
        )
    if hooks:
        name, env = hooks[0]
        (out / "webhook-sink").write_text(name, encoding="utf-8")
        (out / "webhook-secret-env").write_text(env, encoding="utf-8")
        (out / "webhook-secret-placeholder").write_text(
            (secret.get("stringData") or {}).get(env, ""), encoding="utf-8"
        )

    # Ports and probes.
    ports = {p["name"]: p["containerPort"] for p in gateway.get("ports", [])}
    listen_port = int(str(config.get("listen", "")).rsplit(":", 1)[-1] or 0)
    c.check(
        str(config.get("listen", "")).startswith("0.0.0.0:") and ports.get("http") == listen_port,
        f"listen {config.get('listen')} is the container port named http ({ports.get('http')})",
    )
    readiness = gateway.get("readinessProbe", {}).get("httpGet", {})
    liveness = gateway.get("livenessProbe", {}).get("httpGet", {})
    c.check(
        readiness.get("path") == "/readyz" and readiness.get("port") in ("http", listen_port),
        "readinessProbe is GET /readyz on the http port",
    )
    c.check(
        liveness.get("path") == "/healthz" and liveness.get("port") in ("http", listen_port),
        "livenessProbe is GET /healthz on the http port",
    )
    c.check(
        all(k in gateway.get("resources", {}).get(part, {}) for part in ("requests", "limits") for k in ("cpu", "memory")),
        "the gateway has cpu and memory requests and limits",
    )
    c.check(
        bool(pod.get("topologySpreadConstraints") or pod.get("affinity", {}).get("podAntiAffinity")),
        "replicas are spread (topologySpreadConstraints or podAntiAffinity)",
    )
    for constraint in pod.get("topologySpreadConstraints", []):
        c.check(
            selects(constraint["labelSelector"]["matchLabels"], pod_labels),
            f"the {constraint['topologyKey']} spread constraint selects the gateway's pods",
        )

    # Variables that would override the file at run time go into --check-config too.
    overrides = [
        f"{e['name']}={e['value']}"
        for e in gateway.get("env", [])
        if e["name"].startswith("ATTRGATE__") and "value" in e
    ]
    c.check(
        all("value" in e for e in gateway.get("env", []) if e["name"].startswith("ATTRGATE__")),
        "every ATTRGATE__ override in the Deployment is a literal (so --check-config sees it)",
    )
    (out / "overrides.env").write_text("".join(o + "\0" for o in overrides), encoding="utf-8")

    check_redis(c, objects, config, deployment, pod_labels)

    (out / "attrgate.yaml").write_text(config_text, encoding="utf-8")
    (out / "policy.yaml").write_text(policy_map["data"][policy_path.name], encoding="utf-8")
    (out / "negative-top-level.yaml").write_text(
        config_text.rstrip("\n") + f"\n{NEGATIVE_KEY}: true\n", encoding="utf-8"
    )
    nested = yaml.safe_load(config_text)
    nested["audit"][NEGATIVE_KEY] = True
    (out / "negative-nested.yaml").write_text(yaml.safe_dump(nested), encoding="utf-8")
    return pod_labels


def service_hosts(service):
    """The DNS names a pod may use for a Service in another or the same namespace."""
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    return {f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"}


def check_redis(c, objects, config, deployment, pod_labels):
    """The shared Cognito budget and the per-caller limits: both redis_url keys point at
    the Redis Service, and the local share while Redis is down divides by the real
    number of replicas."""
    quota = (config.get("cognito") or {}).get("quota") or {}
    limit = config.get("rate_limit") or {}
    urls = {
        "cognito.quota.redis_url": quota.get("redis_url"),
        "rate_limit.redis_url": limit.get("redis_url"),
    }
    replicas = deployment["spec"].get("replicas")
    c.check(
        quota.get("replicas") == replicas,
        f"cognito.quota.replicas ({quota.get('replicas')}) equals the attrgate Deployment's "
        f"spec.replicas ({replicas}), the share each keeps while Redis does not answer",
    )
    for key, url in urls.items():
        parts = urlsplit(url) if isinstance(url, str) else None
        c.check(
            parts is not None and parts.scheme == "redis" and parts.password is None,
            f"{key} is a redis:// URL without a password (no secret in the ConfigMap)",
            f"it is {url!r}",
        )
    c.check(
        len(set(urls.values())) == 1,
        "cognito.quota.redis_url and rate_limit.redis_url are the same URL (one connection)",
        f"they are {sorted(map(str, urls.values()))}",
    )

    # redis.yaml's objects are labelled as the quota store.
    services = [
        o for o in objects
        if o["kind"] == "Service"
        and o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == REDIS_COMPONENT
    ]
    if not services:
        # redis.yaml replaced by a managed Redis: nothing in the manifests to check against.
        print(f"note: no Service labelled component={REDIS_COMPONENT} (redis.yaml) in the "
              "manifests, a managed Redis?: the redis_url hosts are not cross-checked")
        return
    c.check(len(services) == 1, f"one Redis Service (component={REDIS_COMPONENT})")
    service = services[0]
    ports = {p["port"] for p in service["spec"]["ports"]}
    for key, url in urls.items():
        parts = urlsplit(url) if isinstance(url, str) else None
        host = parts.hostname if parts else None
        port = (parts.port or 6379) if parts else None
        c.check(
            host in service_hosts(service) and port in ports,
            f"{key} points at the Redis Service (redis.yaml): "
            f"{sorted(service_hosts(service))[0]}, port {sorted(ports)}",
            f"it names {host}:{port}",
        )
    redis_pods = [
        o for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
        and selects(service["spec"]["selector"], o["spec"]["template"]["metadata"]["labels"])
    ]
    if len(redis_pods) != 1:
        raise SystemExit(f"FAIL: the Redis Service must select the pods of exactly one "
                         f"Deployment or StatefulSet, found {len(redis_pods)}")
    redis = redis_pods[0]
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    container_ports = {
        key: p["containerPort"]
        for ct in redis["spec"]["template"]["spec"]["containers"]
        for p in ct.get("ports", [])
        for key in (p.get("name"), p["containerPort"])
        if key is not None
    }
    c.check(
        all(p.get("targetPort", p["port"]) in container_ports for p in service["spec"]["ports"]),
        f"the Redis Service targets the container port of {redis['kind']}/{redis['metadata']['name']}",
    )
    c.check(
        not selects(service["spec"]["selector"], pod_labels),
        "the Redis Service does not select the gateway's pods",
    )
    # It has no password: its NetworkPolicy is the only thing keeping others out.
    policies = [
        o for o in objects
        if o["kind"] == "NetworkPolicy"
        and selects(o["spec"]["podSelector"].get("matchLabels", {}), redis_labels)
    ]
    admitted = [
        rule
        for policy in policies
        if "Ingress" in policy["spec"].get("policyTypes", ["Ingress"])
        for rule in policy["spec"].get("ingress", [])
    ]
    redis_port = sorted(set(container_ports.values()))
    c.check(
        bool(admitted)
        and all(
            rule.get("from")
            and all(
                set(peer) == {"podSelector"}
                and selects(peer["podSelector"].get("matchLabels", {}), pod_labels)
                for peer in rule["from"]
            )
            and all(p.get("port") in container_ports for p in rule.get("ports", [{}]))
            for rule in admitted
        ),
        f"a NetworkPolicy admits only the gateway's pods to the Redis pods (port {redis_port})",
    )


def check_routing(c, objects, pod_labels, service_monitor):
    service = one(objects, "Service", "attrgate")
    spec = service["spec"]
    c.check(spec.get("type", "ClusterIP") == "ClusterIP", "the Service is a ClusterIP")
    c.check(selects(spec["selector"], pod_labels), "the Service selects the gateway's pods")
    http = [p for p in spec["ports"] if p.get("name") == "http"]
    c.check(
        len(http) == 1 and http[0]["port"] == 80 and http[0]["targetPort"] in ("http", 8080),
        "the Service maps port 80 (named http) to the container's http port",
    )
    pdb = one(objects, "PodDisruptionBudget", "attrgate")
    c.check(
        selects(pdb["spec"]["selector"]["matchLabels"], pod_labels),
        "the PodDisruptionBudget selects the gateway's pods",
    )
    c.check(
        pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 2,
        "the PodDisruptionBudget keeps 2 of 3 replicas",
    )
    redis_pods = [
        o for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "redis"
    ]
    c.check(
        all(not selects(spec["selector"], d["spec"]["template"]["metadata"]["labels"]) for d in redis_pods),
        "the attrgate Service does not select the Redis example's pods",
    )
    spec = service_monitor["spec"]
    c.check(
        selects(spec["selector"]["matchLabels"], service["metadata"]["labels"])
        and all(e.get("port") == "http" and e.get("path") == "/metrics" for e in spec["endpoints"]),
        "the ServiceMonitor scrapes /metrics on the attrgate Service's http port",
    )


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    directory, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    c = Checks()

    kustomization = load_documents(directory / "kustomization.yaml")[0]
    check_files(c, directory, kustomization)
    objects = []
    for name in kustomization["resources"]:
        objects += load_documents(directory / name)
    secrets = load_documents(directory / "secret.yaml")
    service_monitor = load_documents(directory / "servicemonitor.yaml")[0]

    schema_files = sorted(
        p.name for p in directory.glob("*.yaml") if p.name not in NOT_SCHEMA_VALIDATED
    )
    documents = sum(len(load_documents(directory / name)) for name in schema_files)
    (out / "manifest-files").write_text("\n".join(schema_files) + "\n", encoding="utf-8")
    (out / "manifest-documents").write_text(f"{documents}\n", encoding="utf-8")

    check_namespaces(c, objects + secrets + [service_monitor])
    pod_labels = check_gateway(c, objects, secrets, out)
    check_routing(c, objects, pod_labels, service_monitor)

    print(f"cross-checks: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
