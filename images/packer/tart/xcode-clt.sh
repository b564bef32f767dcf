#!/bin/bash
# Xcode command-line tools, headless: with the "install on demand" stub file in place,
# softwareupdate offers them; install the newest label.
set -euo pipefail
if xcode-select -p >/dev/null 2>&1; then
  echo "command-line tools already at $(xcode-select -p)"
  exit 0
fi
stub=/tmp/.com.apple.dt.CommandLineTools.installondemand.in-progress
touch "$stub"
label=$(softwareupdate -l 2>/dev/null | sed -n 's/^[* ]*Label: \(Command Line Tools.*\)$/\1/p' | sort -V | tail -n 1)
[ -n "$label" ] || { echo "xcode-clt: softwareupdate offers no Command Line Tools" >&2; rm -f "$stub"; exit 1; }
sudo softwareupdate -i "$label" --verbose
rm -f "$stub"
sudo xcode-select --switch /Library/Developer/CommandLineTools
xcode-select -p
