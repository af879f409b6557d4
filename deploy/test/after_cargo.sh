#!/usr/bin/env bash
# deploy/test/after_cargo.sh — the checks that need what `cargo test` built, run by
# scripts/test.sh after it:
#   1. deploy/test/glibc.sh: the binary runs on App Service's Debian 12 base image (glibc 2.36)
#   2. every `az` command the doctor prints as a fix (collected by the doctor's fault-table test
#      in target/tmp/doctor-fix-commands.txt) against the real Azure CLI's argument parser,
#      offline, with the venv deploy/test/run.sh installed
# Ends with "N passed, N failed". Outside CI a missing prerequisite is skipped with the reason.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
AZ_CLI_VERSION=2.91.0
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/restaurant-review
AZ_VENV=$CACHE/azure-cli-$AZ_CLI_VERSION
FIXES=target/tmp/doctor-fix-commands.txt
export AZURE_CORE_COLLECT_TELEMETRY=0
AZURE_CONFIG_DIR=$(mktemp -d)
export AZURE_CONFIG_DIR
trap 'rm -rf "$AZURE_CONFIG_DIR"' EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); }
not_ok() { failed=$((failed + 1)); }
missing() {
  if [ "${CI:-}" = true ]; then echo "  FAIL $* (required in CI)"; not_ok; else echo "  skip $*"; fi
}

printf '\n==> glibc of the built binary\n'
if out=$(bash deploy/test/glibc.sh 2>&1); then
  echo "$out"
  if grep -q skipped <<<"$out"; then missing "no binary was built"; else ok; fi
else
  echo "$out"
  not_ok
fi

printf '\n==> the doctor'"'"'s fix commands against azure-cli %s (offline)\n' "$AZ_CLI_VERSION"
if [ ! -s "$FIXES" ]; then
  missing "$FIXES was not written (the doctor's fault-table test did not run)"
elif [ ! -x "$AZ_VENV/bin/python" ]; then
  missing "azure-cli $AZ_CLI_VERSION is not installed (deploy/test/run.sh installs it)"
elif "$AZ_VENV/bin/python" deploy/test/check_az_args.py "$AZ_VENV/bin/python" \
  "$CACHE/azure-cli-$AZ_CLI_VERSION-help" "$FIXES"; then
  ok
else
  not_ok
fi

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
