#!/usr/bin/env bash
# The benchmarks, in one command: installs wrk (Debian's package) when missing, then runs the
# whole-app benchmark (every route against its database floor, three data sizes, SQLite and
# PostgreSQL on loopback; PostgreSQL 1 ms away, pool sizes, connection cuts and a restart) and
# the photo-pipeline benchmark. Optimised build; ~25 min on 2 cores.
# Settings are read by bench/http/main.rs: BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_SIZES,
# BENCH_BACKENDS, BENCH_SECTIONS, BENCH_POOLS, BENCH_FAULT_SECONDS, BENCH_RTT_MS, BENCH_BEFORE,
# TEST_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  else
    echo "wrk is needed: sudo apt-get install wrk" >&2
    exit 1
  fi
fi
if ! command -v pgbench >/dev/null 2>&1; then
  echo "pgbench (PostgreSQL's client tools) is needed for the PostgreSQL floors" >&2
  exit 1
fi

cargo bench --locked --bench http
cargo bench --locked --bench photos
