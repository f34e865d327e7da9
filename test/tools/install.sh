#!/usr/bin/env bash
# Outside clients the test suite drives (clients this project did not write), installed on a fresh
# machine by .ci/run before `npm test`. Idempotent: what is already installed is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Debian packages (one line per tool, with the reason)
# kcat: a librdkafka producer with its default partitioner (test/integration/librdkafka.test.ts)
apt_install kcat

# PyPI packages, into a virtualenv of the project's (test/tools/.venv)
venv=test/tools/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip_install() { "$venv/bin/pip" install -q --disable-pip-version-check "$@"; }
# schemathesis: the OpenAPI document against the running service (test/integration/schemathesis.test.ts)
pip_install schemathesis==4.32.0
# check-jsonschema: deploy/docker/compose.yaml against the Compose specification's schema (npm run test:deploy)
# kubernetes-validate: the Helm chart's rendered manifests against the Kubernetes API schemas, offline (npm run test:deploy)
pip_install check-jsonschema==0.39.0 kubernetes-validate==1.37.0
