#!/usr/bin/env bash
# The Helm chart (deploy/helm/streamrec), offline: helm lint --strict; helm template in several
# scenarios; the manifests against the Kubernetes API schemas (kubernetes-validate --strict); the
# assertions the schemas cannot make (test/deploy/helm-assert.py); the renders that must fail; every
# value documented in the chart's README; and proof that the checks can fail.
# Tools from test/tools/install.sh: helm (built with go install) and the venv's kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin="${STREAMREC_CACHE_DIR:-$HOME/.cache/streamrec}/bin"
helm="$bin/helm"
py=test/tools/.venv/bin/python
kv=test/tools/.venv/bin/kubernetes-validate
for tool in "$helm" "$py" "$kv"; do
  [ -x "$tool" ] || { echo "helm-check: $tool is missing; run test/tools/install.sh" >&2; exit 1; }
done

chart=deploy/helm/streamrec
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Helm's own folders in the scratch folder: nothing read from or written to the user's Helm setup,
# no repository index, no network.
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"
# Schemas: the chart's minimum (Chart.yaml kubeVersion) and kubernetes-validate's newest.
kube_versions=(1.27.0 1.37.0)
brokers='kafka-0.kafka:9092,kafka-1.kafka:9092'
# --set splits on commas: the list as --set/--set-string takes it.
brokers_set='kafka-0.kafka:9092\,kafka-1.kafka:9092'
fails=0
fail() { echo "helm-check: FAILED: $*" >&2; fails=$((fails + 1)); }

# A helm built by go install reports only its minor version ("v4.3"); the link names the pin.
echo "helm-check: helm $("$helm" version --short), $(readlink "$helm")"

# 1. helm lint --strict (warnings fail too), with the defaults and with every option turned on.
"$helm" lint --strict "$chart" --set-string "config.KAFKA_BROKERS=$brokers_set" >"$work/lint1.txt" 2>&1 || { cat "$work/lint1.txt"; fail "helm lint --strict (defaults)"; }
"$helm" lint --strict "$chart" --set-string "config.KAFKA_BROKERS=$brokers_set" --set serviceMonitor.enabled=true \
  --set replicaCount=3 --set auth.existingSecret=streamrec-keys >"$work/lint2.txt" 2>&1 || { cat "$work/lint2.txt"; fail "helm lint --strict (all options)"; }

# Every value documented: values.yaml against the README's Values table (rows and defaults).
"$py" test/deploy/helm-assert.py docs "$chart" || fail "the chart README's Values table"

# 2. Renders: NAME, then the expectations for helm-assert.py, then helm's flags.
render() {
  local name=$1 expect=$2; shift 2
  local out="$work/$name.yaml"
  if ! "$helm" template rec "$chart" --namespace shop "$@" >"$out" 2>"$work/$name.err"; then
    cat "$work/$name.err" >&2
    fail "helm template ($name)"
    return
  fi
  # kubernetes-validate reports a kind it has no schema for as a WARN and passes it, so the
  # ServiceMonitor (a CRD: none of its schemas) is taken out here and checked by helm-assert.py
  # against the fields it uses; any other WARN is a failure.
  "$py" test/deploy/helm-assert.py split "$out" "$work/$name.core.yaml" >/dev/null
  for v in "${kube_versions[@]}"; do
    if ! "$kv" --strict --quiet -k "$v" "$work/$name.core.yaml" >"$work/$name.kv.txt" 2>&1 || [ -s "$work/$name.kv.txt" ]; then
      cat "$work/$name.kv.txt" >&2
      fail "kubernetes-validate --strict -k $v ($name)"
    fi
  done
  # shellcheck disable=SC2086
  "$py" test/deploy/helm-assert.py check "$out" namespace=shop $expect || fail "assertions ($name)"
  echo "helm-check: $name: $(grep -c '^kind:' "$out") manifests, valid against Kubernetes ${kube_versions[*]}"
}

render defaults "replicas=1 monitor=false env.KAFKA_BROKERS=$brokers env.STREAMREC_GROUP=demo" \
  --set-string "config.KAFKA_BROKERS=$brokers_set"

# Every option: 3 pods, the ServiceMonitor, an existing Secret, a longer grace, numbers as Helm reads
# them from a values file (float64: 1000000 must not become 1e+06), a SASL password by secretKeyRef.
cat >"$work/values-all.yaml" <<EOF
replicaCount: 3
group: shop
serviceMonitor: {enabled: true, labels: {release: prometheus}}
auth: {existingSecret: streamrec-keys, secretKey: key}
config:
  KAFKA_BROKERS: "$brokers"
  KAFKA_SSL: true
  KAFKA_SASL_MECHANISM: scram-sha-512
  KAFKA_SASL_USERNAME: streamrec
  STREAMREC_SHUTDOWN_GRACE_MS: 45000
  STREAMREC_TRAINING_MAX_EVENTS: 1000000
  STREAMREC_TRAINING_PROMOTE_TOLERANCE: 0.05
  STREAMREC_TOPIC_PARTITIONS: 6
  STREAMREC_TOPIC_REPLICATION_FACTOR: 3
extraEnv:
  - name: KAFKA_SASL_PASSWORD
    valueFrom: {secretKeyRef: {name: kafka-user, key: password}}
persistence: {storageClass: fast-ssd, size: 50Gi}
EOF
render all-options "replicas=3 monitor=true secret=streamrec-keys grace_ms=45000 env.STREAMREC_GROUP=shop env.KAFKA_SSL=true env.STREAMREC_TRAINING_MAX_EVENTS=1000000 env.STREAMREC_TRAINING_PROMOTE_TOLERANCE=0.05 env.STREAMREC_TOPIC_PARTITIONS=6" \
  -f "$work/values-all.yaml" --kube-version 1.27.0

# 3. Renders that must fail, each with its message (a fixed string of the chart's).
must_fail() {
  local name=$1 message=$2; shift 2
  if "$helm" template rec "$chart" "$@" >/dev/null 2>"$work/$name.err"; then
    fail "$name: rendered, but must fail with: $message"
  elif ! grep -qF -- "$message" "$work/$name.err"; then
    cat "$work/$name.err" >&2
    fail "$name: failed without the message: $message"
  else
    echo "helm-check: $name: refused ($(grep -oF -- "$message" "$work/$name.err" | head -1))"
  fi
}
must_fail no-brokers 'config.KAFKA_BROKERS is required: the Kafka cluster as host:port'
must_fail bad-broker 'config.KAFKA_BROKERS: "kafka-0" is not host:port' --set-string 'config.KAFKA_BROKERS=kafka-0'
must_fail reserved-key 'config.STREAMREC_STATE_DIR is set by the chart' --set-string "config.KAFKA_BROKERS=$brokers_set" --set config.STREAMREC_STATE_DIR=/x
must_fail twice-set 'extraEnv: STREAMREC_LOG_LEVEL is already set by the chart or by config' --set-string "config.KAFKA_BROKERS=$brokers_set" --set 'extraEnv[0].name=STREAMREC_LOG_LEVEL' --set 'extraEnv[0].value=debug'
must_fail bad-group 'group: "a.b" is not a dataset group name' --set-string "config.KAFKA_BROKERS=$brokers_set" --set group=a.b
must_fail no-grace-margin 'terminationGraceExtraSeconds: must be at least 1' --set-string "config.KAFKA_BROKERS=$brokers_set" --set terminationGraceExtraSeconds=0
must_fail old-kubernetes 'chart requires kubeVersion: >=1.27.0-0' --set-string "config.KAFKA_BROKERS=$brokers_set" --kube-version 1.26.0

# 4. The assertions can fail: the default render with its grace period cut to 5 s (under the 20 s of
# shutdown.graceMs) is caught.
sed 's/^\( *terminationGracePeriodSeconds:\) 30$/\1 5/' "$work/defaults.yaml" >"$work/short-grace.yaml"
if ! grep -q 'terminationGracePeriodSeconds: 5$' "$work/short-grace.yaml"; then
  fail "short-grace: the default render has no terminationGracePeriodSeconds: 30 to cut"
elif "$py" test/deploy/helm-assert.py check "$work/short-grace.yaml" namespace=shop >"$work/short-grace.txt"; then
  fail "helm-assert.py passed a terminationGracePeriodSeconds of 5 s under a 20 s shutdown.graceMs"
elif ! grep -q 'terminationGracePeriodSeconds 5 is not above shutdown.graceMs 20000' "$work/short-grace.txt"; then
  cat "$work/short-grace.txt" >&2
  fail "short-grace: helm-assert.py failed it for another reason"
else
  echo "helm-check: short-grace: caught by the assertions"
fi

# 5. The schema check can fail too: a misspelt field (strict: no unknown properties) is refused.
"$py" test/deploy/helm-assert.py split "$work/defaults.yaml" "$work/typo.yaml" >/dev/null
sed -i 's/^  podManagementPolicy: Parallel$/  podManagmentPolicy: Parallel/' "$work/typo.yaml"
if "$kv" --strict --quiet -k 1.37.0 "$work/typo.yaml" >"$work/typo.txt" 2>&1; then
  fail "kubernetes-validate --strict passed a StatefulSet with podManagmentPolicy"
elif ! grep -q "'podManagmentPolicy' was unexpected" "$work/typo.txt"; then
  cat "$work/typo.txt" >&2
  fail "typo: kubernetes-validate failed it for another reason"
else
  echo "helm-check: typo: caught by kubernetes-validate --strict"
fi

if [ "$fails" -ne 0 ]; then
  echo "helm-check: $fails check(s) failed" >&2
  exit 1
fi
echo "helm-check: passed"
