#!/usr/bin/env bash
# CI entry: makes sure the QEMU guest image is in the cache, building it when it is not.
#
#   sudo images/ensure-image.sh [build-debian.sh options…]
#
# 1. Compiles the runner stand-in (dist/emulator/runner/*.js) when it is missing or older
#    than its sources (npx tsc -p tsconfig.build.json), unless --runner-tarball is given.
# 2. Runs images/build-debian.sh, which returns at once when an image built from the same
#    inputs is cached, and points the alias (default debian-bookworm-runner) at it.
# Needs root and, on a cold cache, debootstrap + qemu-utils + the Debian mirror (~2 min).
# Prints the image directory on stdout.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tarball=0
for a in "$@"; do [ "$a" = --runner-tarball ] && tarball=1; done
if [ "$tarball" = 0 ]; then
  entry="$repo/dist/emulator/runner/main.js"
  if [ ! -f "$entry" ] || [ -n "$(find "$repo/emulator/runner" "$repo/emulator/github/protocol.ts" -newer "$entry" -name '*.ts' 2>/dev/null | head -n 1)" ]; then
    echo "ensure-image: compiling the runner stand-in (npx tsc -p tsconfig.build.json)" >&2
    (cd "$repo" && npx tsc -p tsconfig.build.json)
  fi
fi
exec "$repo/images/build-debian.sh" --print-dir "$@"
