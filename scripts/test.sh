#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs Azurite, playwright-core and Chromium, runs the
# deployment checks (installing ShellCheck, hadolint and the Azure CLI for its argument parser),
# then formatting, lints, and every unit and integration test against SQLite, the real PostgreSQL, throwaway PostgreSQL
# clusters, Azurite and headless Chromium (tests/api/browser.rs).
#
# PostgreSQL: tests use TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# and create a fresh database per test. If none answers, this script tries to start the local
# cluster; in CI (CI=true) the PostgreSQL tests then fail loudly, on a laptop they are skipped
# with a printed reason.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

postgres_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}"
  else
    (exec 3<>"/dev/tcp/${PGHOST:-127.0.0.1}/${PGPORT:-5432}") 2>/dev/null
  fi
}

step "PostgreSQL"
if [ -z "${TEST_POSTGRES_URL:-}" ] && ! postgres_answers; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for dir in /etc/postgresql/*/; do
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$dir")" main start 2>/dev/null || true
    done
    sleep 2
  fi
fi
if [ -n "${TEST_POSTGRES_URL:-}" ] || postgres_answers; then
  echo "PostgreSQL is reachable"
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable on ${PGHOST:-127.0.0.1}:${PGPORT:-5432}; the PostgreSQL tests will fail" >&2
else
  echo "PostgreSQL is not reachable; the PostgreSQL tests will be skipped"
fi

step "npm ci (Azurite, the Azure Storage emulator, and playwright-core, the browser driver; pinned in package.json)"
if command -v npm >/dev/null 2>&1; then
  npm ci --no-audit --no-fund --loglevel=error
elif [ "${CI:-}" = "true" ]; then
  echo "npm is required in CI to install Azurite and playwright-core" >&2
  exit 1
else
  echo "npm not found; the Blob Storage and browser tests will be skipped"
fi

step "Chromium (the browser tests drive Debian's chromium headless)"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (apt-get) ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; } || true
fi
if [ -x "$CHROMIUM" ]; then
  "$CHROMIUM" --version 2>/dev/null || echo "Chromium at $CHROMIUM"
elif [ "${CI:-}" = "true" ]; then
  echo "Chromium is required in CI for the browser tests (apt-get install chromium, or set CHROMIUM)" >&2
  exit 1
else
  echo "Chromium not found at $CHROMIUM; the browser tests will be skipped (apt-get install chromium, or set CHROMIUM)"
fi
export CHROMIUM

step "schemathesis (the API fuzzer, pinned, from PyPI into target/schemathesis-venv)"
# tests/api/api_document.rs runs it against the app and its own OpenAPI document.
SCHEMATHESIS_VERSION=4.32.5
st_venv=target/schemathesis-venv
if ! "$st_venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  { python3 -m venv "$st_venv" &&
    "$st_venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; } ||
    { [ "${CI:-}" = "true" ] && { echo "installing schemathesis failed (python3 with venv and pip needed)" >&2; exit 1; }; } ||
    echo "schemathesis not installed; the API fuzz test will be skipped"
fi
"$st_venv/bin/st" --version 2>/dev/null || true
export SCHEMATHESIS="$PWD/$st_venv/bin/st"

step "deployment checks (shellcheck, hadolint, deploy/azure.sh against a stub az, every az flag against the real CLI)"
bash deploy/test/run.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
# The Azure tests mostly wait on timers (token lifetimes of a minute and more), so run more of
# them at once than there are cores.
cargo test --all-targets --locked -- --test-threads 8

step "after the build: the binary's glibc floor, the doctor's fix commands against the real CLI"
bash deploy/test/after_cargo.sh
