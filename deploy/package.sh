#!/usr/bin/env bash
# deploy/package.sh — build the release binary and zip it for App Service:
#   target/deploy/restaurant-review.zip, with the binary `restaurant-review` at the zip's root.
#
# App Service unzips the package into /home/site/wwwroot, and deploy/azure.sh sets the startup
# command to /home/site/wwwroot/restaurant-review. The binary runs on the built-in Linux image
# PYTHON:3.12 (used only as a base: Debian 12 bookworm, glibc 2.36). Build it on bookworm or
# older (rust:*-bookworm, Debian 12, Ubuntu 22.04) so it needs no newer glibc;
# deploy/test/glibc.sh checks that.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --locked

out=target/deploy
rm -rf "$out/stage" "$out/restaurant-review.zip"
mkdir -p "$out/stage"
cp target/release/restaurant-review "$out/stage/restaurant-review"
chmod 0755 "$out/stage/restaurant-review"
# A fixed timestamp, so the same binary gives the same zip (azure.sh skips redeploying it).
touch -d '2000-01-01T00:00:00Z' "$out/stage/restaurant-review"
if command -v zip >/dev/null 2>&1; then
  (cd "$out/stage" && zip -q -X -j ../restaurant-review.zip restaurant-review)
else
  (cd "$out/stage" && python3 -m zipfile -c ../restaurant-review.zip restaurant-review)
fi
rm -rf "$out/stage"
echo "$out/restaurant-review.zip ($(du -h "$out/restaurant-review.zip" | cut -f1))"
