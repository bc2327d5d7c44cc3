#!/usr/bin/env bash
# Install the system packages airgap-check needs, idempotently (Debian/Ubuntu).
#   scripts/install-deps.sh            what building and testing need
#   scripts/install-deps.sh bench      plus what the benchmarks use (tcpdump, tshark, GNU time, bc, jq)
set -euo pipefail

need=(libpcap-dev pkg-config libxml2-utils busybox-static gcc libc6-dev)
if [ "${1:-}" = bench ]; then
  need+=(tcpdump tshark time bc jq)
fi

missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
