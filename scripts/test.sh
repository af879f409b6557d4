#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every unit and integration test
# against SQLite and the real PostgreSQL.
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
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
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

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --all-targets --locked
