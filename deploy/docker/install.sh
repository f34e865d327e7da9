#!/bin/sh
# The container image's install and start commands, in one place. The Dockerfile RUNs the install
# steps and uses `cli` as its ENTRYPOINT; test/integration/image.test.ts runs the same steps as
# processes in a scratch folder and starts the service the same way, so what the test checks is
# what the image does.
#
#   install.sh deps <srcdir>              all dependencies (dev included: the build needs tsc), no install scripts
#   install.sh build <srcdir> <appdir>    compile src/ into dist/ and lay out the runtime files in <appdir>
#   install.sh runtime <appdir>           production dependencies only into <appdir>, then `check`
#   install.sh check <appdir>             the native binding (rocksdb-native) loads and works; the CLI loads
#   install.sh cli [streamrec args...]    the entrypoint: `streamrec ...` as PID 1 (root key from a file, see below)
#   install.sh demo-data                  the demo's sample data into the group's topics, once (compose's demo-data)
#
# POSIX sh on purpose: it runs in the node:*-slim image (dash, no curl) and on a developer machine.
set -eu

die() {
  echo "install.sh: $*" >&2
  exit 1
}

# The files of the built package that the service needs at run time (read by src/util/paths.ts:
# package.json, avro/, topics/; ui/ is the dashboard; bin/ and dist/ are the code). deploy/kafka/ (the local broker's
# Maven pom) is left out on purpose: the image has no Java and never starts a local broker.
RUNTIME_FILES="package.json package-lock.json bin dist avro topics ui deploy/docker/install.sh"

# npm ci without lifecycle scripts: package.json's `prepare` runs tsc (a dev dependency, missing in
# a production install), and the optional @tensorflow/tfjs-node's install script downloads
# libtensorflow from the network. No dependency needs its script: rocksdb-native ships prebuilt
# binaries in its package (prebuilds/<platform>-<arch>/), and core-js's script only prints a banner.
# `check` proves the binding loads.
npm_ci() {
  npm ci --ignore-scripts --no-audit --no-fund "$@"
}

# This script's absolute path: its steps cd elsewhere, and the package root is two folders up
# (deploy/docker/install.sh inside the runtime folder).
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
root=$(dirname "$(dirname "$(dirname "$self")")")

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  deps)
    [ $# -eq 1 ] || die "usage: install.sh deps <srcdir>"
    cd "$1"
    # --omit=optional: only @tensorflow/tfjs-node and its tree are optional, and the build does not
    # need them (the runtime leaves them out too: training uses the WebAssembly backend).
    npm_ci --omit=optional
    ;;

  build)
    [ $# -eq 2 ] || die "usage: install.sh build <srcdir> <appdir>"
    src=$1
    app=$2
    (cd "$src" && npm run build)
    mkdir -p "$app"
    for f in $RUNTIME_FILES; do
      [ -e "$src/$f" ] || die "build: $src/$f is missing (a runtime file; is it in the Dockerfile's COPY lines and allowed by .dockerignore?)"
      mkdir -p "$app/$(dirname "$f")"
      rm -rf "${app:?}/$f"
      cp -R "$src/$f" "$app/$f"
    done
    # Source maps stay (stack traces name src/ lines); the TypeScript sources do not ship.
    ;;

  runtime)
    [ $# -eq 1 ] || die "usage: install.sh runtime <appdir>"
    cd "$1"
    # Production dependencies only: no TypeScript, vitest, vite or dependency-cruiser in the image.
    npm_ci --omit=dev --omit=optional
    # rocksdb-native ships binaries for 13 platforms (about 160 MB); keep this one's only (about
    # 20 MB). A multi-platform build (buildx) runs this step once per platform. `check` then proves
    # the one kept loads.
    # shellcheck disable=SC2016 # ${...} is JavaScript's template literal, not the shell's
    node -e '
      const { readdirSync, rmSync } = require("fs");
      const dir = "node_modules/rocksdb-native/prebuilds";
      const keep = `${process.platform}-${process.arch}`;
      const all = readdirSync(dir);
      if (!all.includes(keep)) { console.error(`install.sh: rocksdb-native has no prebuilt binary for ${keep} (only ${all.join(", ")})`); process.exit(1); }
      for (const d of all) if (d !== keep) rmSync(`${dir}/${d}`, { recursive: true, force: true });
    '
    "$self" check .
    ;;

  check)
    [ $# -eq 1 ] || die "usage: install.sh check <appdir>"
    cd "$1"
    [ -d node_modules/typescript ] && die "check: node_modules/typescript is installed: dev dependencies must not be in the runtime folder"
    # Open, write, read and close a RocksDB store: the prebuilt binary matches this platform and libc.
    node -e '
      const RocksDB = require("rocksdb-native");
      const dir = require("fs").mkdtempSync(require("path").join(require("os").tmpdir(), "streamrec-check-"));
      (async () => {
        const db = new RocksDB(dir);
        await db.ready();
        const w = db.write({ autoDestroy: true }); w.put("k", "v"); await w.flush();
        const r = db.read({ autoDestroy: true }); const p = r.get("k"); r.tryFlush(); const v = await p;
        await db.close();
        require("fs").rmSync(dir, { recursive: true, force: true });
        if (String(v) !== "v") throw new Error("read back " + String(v));
        console.log("install.sh: check: rocksdb-native " + require("rocksdb-native/package").version + " loads and works on " + process.platform + "-" + process.arch);
      })().catch((e) => { console.error("install.sh: check: rocksdb-native does not work here: " + (e && e.stack || e)); process.exit(1); });
    '
    # --help loads every command's modules: a production dependency missing from package.json fails here.
    node bin/streamrec.js --help >/dev/null || die "check: bin/streamrec.js --help failed"
    echo "install.sh: check: streamrec $(node -p 'require("./package.json").version') loads"
    ;;

  cli)
    # The root API key from a file (compose and Kubernetes secrets are files): the config reads it
    # from STREAMREC_API_ROOT_KEY only, so it is exported from STREAMREC_API_ROOT_KEY_FILE here.
    if [ -n "${STREAMREC_API_ROOT_KEY_FILE:-}" ] && [ -z "${STREAMREC_API_ROOT_KEY:-}" ]; then
      [ -e "$STREAMREC_API_ROOT_KEY_FILE" ] || die "STREAMREC_API_ROOT_KEY_FILE=$STREAMREC_API_ROOT_KEY_FILE does not exist (is the secret mounted?)"
      [ -r "$STREAMREC_API_ROOT_KEY_FILE" ] || die "STREAMREC_API_ROOT_KEY_FILE=$STREAMREC_API_ROOT_KEY_FILE cannot be read by uid $(id -u) (a compose file secret keeps the host file's owner and mode: make it readable by uid $(id -u))"
      STREAMREC_API_ROOT_KEY=$(cat "$STREAMREC_API_ROOT_KEY_FILE")
      [ -n "$STREAMREC_API_ROOT_KEY" ] || die "STREAMREC_API_ROOT_KEY_FILE=$STREAMREC_API_ROOT_KEY_FILE is empty"
      export STREAMREC_API_ROOT_KEY
    fi
    # Without KAFKA_BROKERS, `streamrec start` (and `kafka start`) would start a local broker, which
    # needs Java and Maven: the image has neither, by design. Say so instead of failing inside.
    if [ -z "${KAFKA_BROKERS:-}" ]; then
      case "${1:-} ${2:-}" in
        "start "* | "kafka start")
          die "KAFKA_BROKERS is not set: this image runs no local Kafka broker (no Java in it). Point it at a cluster, e.g. -e KAFKA_BROKERS=kafka:9092" ;;
      esac
    fi
    cd "$root"
    # exec: node is PID 1 and gets SIGTERM itself (`streamrec start` then stops in order within
    # shutdown.graceMs).
    exec node bin/streamrec.js "$@"
    ;;

  demo-data)
    # `streamrec start` puts sample data in only with the local broker; with KAFKA_BROKERS this does
    # it: the same seeded catalogue (1,000 items with CATEGORY and PRICE) and 10,000 events of 500
    # users ending now, through `streamrec import`. Once: a marker file in STREAMREC_DEMO_DATA_DIR
    # (a volume) records that it was done, so a second `compose up` does not import them again.
    group=${STREAMREC_GROUP:-demo}
    dir=${STREAMREC_DEMO_DATA_DIR:-/var/lib/streamrec-demo}
    mkdir -p "$dir"
    marker="$dir/imported-$group"
    if [ -e "$marker" ]; then
      echo "install.sh: demo-data: already imported into group $group ($(cat "$marker")); remove $marker to import again"
      exit 0
    fi
    cd "$root"
    # shellcheck disable=SC2016 # ${...} is JavaScript's template literal, not the shell's
    node --input-type=module -e '
      import { writeFileSync } from "node:fs";
      import { syntheticInteractions, syntheticItems } from "./dist/data/synthetic.js";
      const [dir] = process.argv.slice(1);
      const items = ["ITEM_ID,CATEGORY,PRICE"];
      for (const it of syntheticItems({ seed: 1, items: 1000 })) items.push(`${it.ITEM_ID},${it.METADATA.CATEGORY},${it.METADATA.PRICE}`);
      writeFileSync(`${dir}/items.csv`, items.join("\n") + "\n");
      const events = 10000;
      const rows = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,SESSION_ID"];
      for (const e of syntheticInteractions({ seed: 1, users: 500, items: 1000, events, start: Date.now() - events * 1000 }))
        rows.push(`${e.USER_ID},${e.ITEM_ID},${e.TIMESTAMP},${e.EVENT_TYPE},${e.SESSION_ID}`);
      writeFileSync(`${dir}/interactions.csv`, rows.join("\n") + "\n");
    ' "$dir"
    node bin/streamrec.js import --group "$group" --items "$dir/items.csv" --types PRICE=numeric,CATEGORY=categorical --interactions "$dir/interactions.csv" --rejects "$dir"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$marker"
    rm -f "$dir/items.csv" "$dir/interactions.csv"
    echo "install.sh: demo-data: imported into group $group"
    ;;

  *)
    die "unknown command \"$cmd\"; one of: deps <srcdir>, build <srcdir> <appdir>, runtime <appdir>, check <appdir>, cli [args], demo-data"
    ;;
esac
