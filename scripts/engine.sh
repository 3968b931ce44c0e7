# Sourced by scripts/pulumi and scripts/up (or run on its own, to print the folder): finds the Pulumi CLI this
# project runs, and sets PULUMI_BIN_DIR to the folder holding `pulumi`, the Python, Node.js and YAML language
# hosts and the two runtime shims.
# A `pulumi` on PATH wins. Otherwise the pinned build of engine/ (the Pulumi CLI from its Go modules, plus our
# Python and Node.js language hosts and the YAML one) is made once per machine into a per-user cache keyed by the
# version and engine/'s sources; Go's own module and build caches make a rebuild quick.
engine_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PULUMI_VERSION="$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" { print $2 }' "$engine_root/engine/go.mod")"

pulumi_build_dir() {
  local key
  # Every Go source of the module (in a stable order), its go.mod and go.sum, and the YAML host's.
  key="$( (cd "$engine_root/engine" && find . -name '*.go' | LC_ALL=C sort | xargs cat go.mod go.sum \
    language-yaml/go.mod language-yaml/go.sum) | sha256sum | cut -c1-12)"
  echo "${KMS_CONNECTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kms-connection}/pulumi-$PULUMI_VERSION-$key"
}

ensure_pulumi() {
  if [ -z "${KMS_CONNECTION_PINNED_PULUMI:-}" ] && command -v pulumi >/dev/null 2>&1; then
    PULUMI_BIN_DIR="$(dirname "$(command -v pulumi)")"
    return 0
  fi
  local dir
  dir="$(pulumi_build_dir)"
  if [ ! -x "$dir/bin/pulumi" ]; then
    if ! command -v go >/dev/null 2>&1; then
      echo "Neither a Pulumi CLI nor Go is on PATH: install one of them (Go builds the pinned CLI here)." >&2
      return 1
    fi
    mkdir -p "$(dirname "$dir")"
    # One build at a time per machine; a second caller waits for it, then finds the result.
    exec 9>"$dir.lock"
    flock 9
    if [ ! -x "$dir/bin/pulumi" ]; then
      local started tmp log
      started=$(date +%s)
      tmp="$dir.partial"
      log="$dir.build.log"
      rm -rf "$tmp"
      mkdir -p "$tmp/bin"
      echo "building the Pulumi CLI $PULUMI_VERSION from its Go modules, once: about 6 minutes (log: $log)" >&2
      if ! (
        cd "$engine_root/engine" &&
        go build -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
          -o "$tmp/bin/" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi ./pulumi-language-python \
          ./pulumi-language-nodejs &&
        # The YAML language host, from its own module (see language-yaml/go.mod for why).
        (cd language-yaml &&
         go build -ldflags "-X github.com/pulumi/pulumi-yaml/pkg/version.Version=$(awk \
           '$1 == "github.com/pulumi/pulumi-yaml" { print $2 }' go.mod)" \
           -o "$tmp/bin/" github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml) &&
        sdk="$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" |
               python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" &&
        # The two shims a release archive ships beside the binaries, from the SDK module's own files.
        install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" \
          "$sdk/python/dist/pulumi-resource-pulumi-python" "$tmp/bin/"
      ) >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "Building the Pulumi CLI failed; the full log is $log." >&2
        exec 9>&-
        return 1
      fi
      rm -rf "$dir"
      mv "$tmp" "$dir"
      echo "built the Pulumi CLI $PULUMI_VERSION in $(( $(date +%s) - started )) s into $dir" >&2
    fi
    exec 9>&-
  fi
  PULUMI_BIN_DIR="$dir/bin"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  ensure_pulumi
  echo "$PULUMI_BIN_DIR"
fi
