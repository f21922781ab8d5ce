#!/usr/bin/env bash
# Install the Debian packages the project needs when they are missing: WordNet 3.0 (for the
# WordNet export test) and, with --browser, Chromium (for the end-to-end dashboard tests).
set -euo pipefail
need=()
[ -f /usr/share/wordnet/data.noun ] || need+=(wordnet-base wordnet-sense-index)
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then need+=(chromium); fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  echo "(continuing; the tests that need them will be skipped)" >&2
  exit 0
fi
echo "installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
