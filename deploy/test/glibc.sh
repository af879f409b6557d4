#!/usr/bin/env bash
# deploy/test/glibc.sh — the built binary must run on App Service's built-in Linux images,
# which are Debian 12 bookworm (glibc 2.36): the highest GLIBC_x.y symbol version it needs
# must be at most 2.36. Checks target/release/restaurant-review and target/debug/restaurant-review,
# whichever exist; says "skipped" (exit 0) when neither does. Needs objdump (binutils).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
readonly MAX=2.36

found=false status=0
for bin in target/release/restaurant-review target/debug/restaurant-review; do
  [ -f "$bin" ] || continue
  found=true
  if ! command -v objdump >/dev/null 2>&1; then
    echo "glibc check: objdump not found (apt-get install binutils)" >&2
    exit 1
  fi
  need=$(objdump -T "$bin" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/GLIBC_//' | sort -uV | tail -n1)
  [ -n "$need" ] || { echo "glibc check: $bin needs no versioned glibc symbol?" >&2; status=1; continue; }
  if [ "$(printf '%s\n%s\n' "$need" "$MAX" | sort -V | tail -n1)" = "$MAX" ]; then
    echo "  ok   $bin needs glibc $need (at most $MAX: Debian 12, App Service's built-in images)"
  else
    echo "  FAIL $bin needs glibc $need, newer than $MAX (Debian 12 bookworm, App Service's built-in images): build on bookworm (rust:*-bookworm)"
    status=1
  fi
done
$found || echo "  skipped: no target/{release,debug}/restaurant-review yet (run after cargo build)"
exit "$status"
