#!/bin/bash
# Installs actions/runner $RUNNER_VERSION ($RUNNER_ARCH) into ~/actions-runner, unconfigured.
set -euo pipefail
: "${RUNNER_VERSION:?}" "${RUNNER_ARCH:=osx-arm64}"
dir="$HOME/actions-runner"
tarball="actions-runner-$RUNNER_ARCH-$RUNNER_VERSION.tar.gz"
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
curl -fsSL --retry 3 -o "$tarball" "https://github.com/actions/runner/releases/download/v$RUNNER_VERSION/$tarball"
if [ -n "${RUNNER_SHA256:-}" ]; then
  echo "$RUNNER_SHA256  $tarball" | shasum -a 256 -c -
fi
tar -xzf "$tarball"
rm -f "$tarball"
# Unconfigured: no registration, no credentials.
for f in .runner .credentials .credentials_rsaparams; do
  [ ! -e "$f" ] || { echo "install-runner: $f exists in a fresh runner" >&2; exit 1; }
done
[ "$(./config.sh --version)" = "$RUNNER_VERSION" ]
echo "actions/runner $RUNNER_VERSION in $dir"
