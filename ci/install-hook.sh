#!/bin/sh
# Install airgap-check's pre-push hook (ci/pre-push, beside this script) into a git repository:
#
#   /path/to/airgap-check/ci/install-hook.sh [--force] [REPO]
#
# REPO defaults to the repository of the current directory. The hook goes where git looks for it
# (`git rev-parse --git-path hooks/pre-push`: .git/hooks/pre-push, or core.hooksPath when set).
# A different pre-push hook already there is left alone unless --force is given; then it is kept
# as pre-push.before-airgap-check. Running it again with the same hook changes nothing.
set -eu

usage() {
  echo "usage: $0 [--force] [REPO]" >&2
  exit 2
}

force=0
repo=.
while [ $# -gt 0 ]; do
  case "$1" in
    --force | -f) force=1 ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) repo="$1" ;;
  esac
  shift
done

here="$(cd "$(dirname "$0")" && pwd)"
src="$here/pre-push"
[ -f "$src" ] || {
  echo "install-hook: $src is missing" >&2
  exit 2
}
cd "$repo" || exit 2
top="$(git rev-parse --show-toplevel)" || {
  echo "install-hook: $repo is not inside a git work tree" >&2
  exit 2
}
target="$(git rev-parse --git-path hooks/pre-push)"
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac

if [ -e "$target" ]; then
  if cmp -s "$src" "$target"; then
    chmod +x "$target"
    echo "install-hook: $target is already airgap-check's pre-push hook"
    exit 0
  fi
  if [ "$force" -ne 1 ]; then
    echo "install-hook: $target exists and is a different hook: left alone." >&2
    echo "install-hook: rerun with --force to replace it (it is kept as $target.before-airgap-check)." >&2
    exit 1
  fi
  cp -p "$target" "$target.before-airgap-check"
  echo "install-hook: kept the previous hook as $target.before-airgap-check"
fi
mkdir -p "$(dirname "$target")"
cp "$src" "$target.tmp.$$"
chmod 755 "$target.tmp.$$"
mv -f "$target.tmp.$$" "$target"
echo "install-hook: installed $target"

if [ ! -f "$top/airgap-check.yaml" ]; then
  cat <<EOF
install-hook: $top/airgap-check.yaml does not exist yet: the hook does nothing until it does
(ci/airgap-check.example.yaml has every key). E.g.:

  apps: [fixtures/simple_app]
  buildpacks: [.]
  stack-image: cloudfoundry/cflinuxfs4
EOF
fi
