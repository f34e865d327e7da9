#!/usr/bin/env bash
# Offline checks of deploy/docker/ (called by test/deploy/run.sh, `npm run test:deploy`). There is no
# Docker engine where the tests run: the image is not built and compose is not run here (its commands
# are run as processes by test/integration/image.test.ts). What is checked instead:
#   1. compose.yaml against the Compose specification's JSON schema: check-jsonschema's vendored copy
#      (--builtin-schema vendor.compose-spec, from github.com/compose-spec/compose-spec
#      schema/compose-spec.json, shipped inside check-jsonschema 0.39.0: no network at test time);
#   2. what the schema cannot see (below, in Python): references resolve, images are pinned, the
#      streamrec instances are distinct (instance id, advertised URL, state volume), prometheus.yml's
#      targets are exactly those instances, the Dockerfile's HEALTHCHECK asks /ready, no Java, a
#      non-root user, COPY sources allowed by .dockerignore;
#   3. hadolint on the Dockerfile, shellcheck on deploy/docker/install.sh and this script.
# The tools come from test/tools/install.sh (npm's pretest).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=test/tools/.venv/bin
for tool in check-jsonschema hadolint shellcheck python; do
  [ -x "$venv/$tool" ] || { echo "compose-check: $venv/$tool is missing; run test/tools/install.sh" >&2; exit 1; }
done

echo "compose-check: deploy/docker/compose.yaml against the Compose specification schema"
"$venv/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker/compose.yaml

echo "compose-check: hadolint deploy/docker/Dockerfile"
"$venv/hadolint" --no-color deploy/docker/Dockerfile
echo "compose-check: shellcheck deploy/docker/install.sh test/deploy/compose-check.sh"
"$venv/shellcheck" deploy/docker/install.sh test/deploy/compose-check.sh

echo "compose-check: compose.yaml, prometheus.yml, Dockerfile and .dockerignore agree"
"$venv/python" - <<'PY'
import json, re, shlex, sys
from pathlib import Path
from ruamel.yaml import YAML

errors = []
def fail(msg): errors.append(msg)

yaml = YAML(typ="safe")
compose = yaml.load(Path("deploy/docker/compose.yaml"))
prom = yaml.load(Path("deploy/docker/prometheus.yml"))
services = compose.get("services", {})

# --- the Dockerfile: instructions with continuations joined, stages, ARG defaults ---------------
lines, buf = [], ""
for raw in Path("deploy/docker/Dockerfile").read_text().splitlines():
    if not buf and (raw.strip() == "" or raw.lstrip().startswith("#")):
        continue
    if raw.rstrip().endswith("\\"):
        buf += raw.rstrip()[:-1] + " "
        continue
    lines.append((buf + raw).strip())
    buf = ""
instrs = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
args = {}
stages = []  # [{name, image, instrs}]
for op, rest in instrs:
    if op == "ARG" and not stages:
        k, _, v = rest.partition("=")
        args[k.strip()] = v.strip()
    elif op == "FROM":
        m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
        image = re.sub(r"\$\{(\w+)\}", lambda g: args.get(g.group(1), ""), m.group(1))
        stages.append({"name": m.group(2), "image": image, "instrs": []})
    elif stages:
        stages[-1]["instrs"].append((op, rest))
final = stages[-1]
env = {}
for op, rest in final["instrs"]:
    if op == "ENV":
        for tok in shlex.split(rest):
            k, _, v = tok.partition("=")
            env[k] = v
api_port = env.get("STREAMREC_API_PORT", "8080")
state_dir = env.get("STREAMREC_STATE_DIR")

for s in stages:
    if not re.fullmatch(r"node:20\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?", s["image"]):
        fail(f"Dockerfile: FROM {s['image']}: expected an exact node:20.x.y-bookworm-slim tag")
hc = [rest for op, rest in final["instrs"] if op == "HEALTHCHECK"]
if len(hc) != 1 or "/ready" not in hc[0] or "CMD" not in hc[0]:
    fail(f"Dockerfile: the final stage needs one HEALTHCHECK CMD that asks /ready, got {hc}")
users = [rest for op, rest in final["instrs"] if op == "USER"]
if not users or users[-1].split(":")[0] in ("root", "0"):
    fail(f"Dockerfile: the final stage must run as a non-root user, got USER {users}")
if not state_dir:
    fail("Dockerfile: the final stage sets no STREAMREC_STATE_DIR")
if env.get("STREAMREC_API_HOST") != "0.0.0.0":
    fail("Dockerfile: STREAMREC_API_HOST must be 0.0.0.0 (the default 127.0.0.1 is unreachable from outside the container)")
java = re.compile(r"\b(java|jdk|jre|openjdk|temurin|maven|mvn)\b", re.I)
script = Path("deploy/docker/install.sh").read_text()
for s in stages:
    for op, rest in s["instrs"]:
        if op == "RUN" and java.search(rest):
            fail(f"Dockerfile: RUN installs Java or Maven ({rest[:80]}): the image must not need Java")
runtime_files = re.search(r'^RUNTIME_FILES="([^"]*)"', script, re.M)
if not runtime_files or "deploy/kafka" in runtime_files.group(1):
    fail("deploy/docker/install.sh: RUNTIME_FILES missing, or ships deploy/kafka (the local broker's Maven pom: the image has no Java)")
if re.search(r"\b(apt-get|apt|apk|dnf|yum)\b[^\n]*\binstall\b", script):
    fail("deploy/docker/install.sh: installs system packages; the image is node:*-slim with nothing added (no Java)")

# COPY sources from the build context are allowed by the allowlist .dockerignore.
ignore = [l.strip() for l in Path(".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
if not ignore or ignore[0] != "*":
    fail(".dockerignore: expected an allowlist starting with `*`")
allowed = {l[1:].rstrip("/") for l in ignore if l.startswith("!")}
for s in stages:
    for op, rest in s["instrs"]:
        if op != "COPY" or "--from" in rest:
            continue
        toks = [t for t in shlex.split(rest) if not t.startswith("--")]
        for src in toks[:-1]:
            src = src.rstrip("/").removeprefix("./")
            if src not in allowed:
                fail(f"Dockerfile: COPY {src}: not in .dockerignore's allowlist (the build context would not have it)")

# --- compose.yaml --------------------------------------------------------------------------------
def mapping(env):
    if isinstance(env, list):
        return dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return dict(env or {})

top_volumes = set((compose.get("volumes") or {}).keys())
top_secrets = set((compose.get("secrets") or {}).keys())
for name, svc in services.items():
    deps = svc.get("depends_on") or {}
    for dep in (deps if isinstance(deps, list) else deps.keys()):
        if dep not in services:
            fail(f"compose: {name} depends on {dep}, which is not a service")
    for v in svc.get("volumes") or []:
        src = v.split(":")[0] if isinstance(v, str) else v.get("source")
        if src and not src.startswith((".", "/")) and src not in top_volumes:
            fail(f"compose: {name} mounts volume {src}, not declared under volumes:")
        if src and src.startswith(".") and not (Path("deploy/docker") / src).exists():
            fail(f"compose: {name} mounts {src}, which does not exist next to compose.yaml")
    for sec in svc.get("secrets") or []:
        sec = sec if isinstance(sec, str) else sec.get("source")
        if sec not in top_secrets:
            fail(f"compose: {name} uses secret {sec}, not declared under secrets:")
    image = svc.get("image", "")
    if not re.fullmatch(r"[\w./-]+:[\w.-]+", image) or image.endswith(":latest"):
        fail(f"compose: {name}: image {image!r} needs an exact tag")

kafka = services.get("kafka", {})
if not re.fullmatch(r"apache/kafka:3\.9\.\d+", kafka.get("image", "")):
    fail(f"compose: kafka: expected apache/kafka:3.9.x (Kafka 4 dropped protocol versions kafkajs 2.2 sends), got {kafka.get('image')}")
kenv = mapping(kafka.get("environment"))
for key in ["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_DEFAULT_REPLICATION_FACTOR"]:
    if str(kenv.get(key)) != "1":
        fail(f"compose: kafka: {key} must be 1 on a single broker (transactions and consumer groups need it), got {kenv.get(key)}")
if "controller" not in str(kenv.get("KAFKA_PROCESS_ROLES", "")):
    fail("compose: kafka: KAFKA_PROCESS_ROLES must include controller (KRaft, one node)")
if not kafka.get("healthcheck"):
    fail("compose: kafka: no healthcheck (the others wait for service_healthy)")
advertised = str(kenv.get("KAFKA_ADVERTISED_LISTENERS", ""))

streamrec_image = services.get("streamrec-1", {}).get("image")
instances = {n: s for n, s in services.items() if s.get("image") == streamrec_image and "command" not in s and "entrypoint" not in s}
if len(instances) < 2:
    fail(f"compose: expected at least two streamrec instances (the image's CMD, start), got {sorted(instances)}")
ids, mounts = {}, {}
for name, svc in services.items():
    if svc.get("image") != streamrec_image:
        continue
    senv = mapping(svc.get("environment"))
    for b in str(senv.get("KAFKA_BROKERS", "")).split(","):
        if f"//{b}" not in advertised:
            fail(f"compose: {name}: KAFKA_BROKERS {b} is not one of kafka's advertised listeners ({advertised})")
    keyfile = senv.get("STREAMREC_API_ROOT_KEY_FILE", "")
    if not keyfile.startswith("/run/secrets/") or keyfile.split("/")[-1] not in (svc.get("secrets") or []):
        fail(f"compose: {name}: STREAMREC_API_ROOT_KEY_FILE {keyfile!r} is not one of its secrets under /run/secrets")
for name, svc in instances.items():
    senv = mapping(svc.get("environment"))
    iid = senv.get("STREAMREC_INSTANCE_ID")
    if not iid or iid in ids:
        fail(f"compose: {name}: STREAMREC_INSTANCE_ID {iid!r} missing or shared with {ids.get(iid)}")
    ids[iid] = name
    port = str(senv.get("STREAMREC_API_PORT", api_port))
    if senv.get("STREAMREC_API_ADVERTISED_URL") != f"http://{name}:{port}":
        fail(f"compose: {name}: STREAMREC_API_ADVERTISED_URL must be http://{name}:{port} (other instances forward queries there), got {senv.get('STREAMREC_API_ADVERTISED_URL')}")
    vols = [v.split(":") for v in svc.get("volumes") or [] if isinstance(v, str)]
    if not any(len(v) >= 2 and v[1] == state_dir for v in vols):
        fail(f"compose: {name}: no volume on the state folder {state_dir}")
    for v in vols:
        if v[0] in mounts:
            fail(f"compose: {name} and {mounts[v[0]]} share {v[0]}: each instance keeps its own state (and versions)")
        mounts[v[0]] = name
    if senv.get("STREAMREC_TRAINING_VERSIONS_DIR"):
        fail(f"compose: {name}: STREAMREC_TRAINING_VERSIONS_DIR set: versions are not shared through a folder")

# --- prometheus.yml --------------------------------------------------------------------------------
targets, paths = set(), set()
for job in prom.get("scrape_configs") or []:
    paths.add(job.get("metrics_path", "/metrics"))
    for sc in job.get("static_configs") or []:
        targets.update(sc.get("targets") or [])
want = {f"{n}:{mapping(s.get('environment')).get('STREAMREC_API_PORT', api_port)}" for n, s in instances.items()}
if targets != want:
    fail(f"prometheus.yml: targets {sorted(targets)} should be the streamrec instances' APIs {sorted(want)}")
if paths != {"/metrics"}:
    fail(f"prometheus.yml: metrics_path {sorted(paths)}, expected /metrics")
pvols = [v for v in services.get("prometheus", {}).get("volumes") or [] if isinstance(v, str)]
if not any(v.startswith("./prometheus.yml:/etc/prometheus/prometheus.yml") for v in pvols):
    fail("compose: prometheus does not mount ./prometheus.yml on /etc/prometheus/prometheus.yml")

if errors:
    print("\n".join(f"compose-check: {e}" for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"compose-check: ok ({len(services)} services; instances {sorted(instances)}; prometheus targets {sorted(targets)}; {len(stages)} Dockerfile stages)")
PY
echo "compose-check: passed"
