#!/usr/bin/env bash
# Concourse task script (ci/concourse/task.yml): stage an app with one or more buildpacks, sealed
# from the network, with airgap-check, and exit with airgap-check's exit code (0 pass, 1 fail,
# 2 bad input, 3 inconclusive). The reports go to the `reports` output. What to stage comes from
# the buildpack repository's airgap-check.yaml (CONFIG) when there is one, as for the pre-push hook
# and the GitHub Action; APP, BUILDPACKS, STACK_IMAGE, ALLOWLIST and TIMEOUT win over its keys.
#
# The task must be privileged (`privileged: true` on the task step): airgap-check needs a Docker
# engine and root, so this script starts a Docker daemon inside the task container, waits for it,
# loads the stack image from an input tarball if one is given, builds airgap-check from source
# (there is no release binary yet) unless the image already has it, runs it, and stops the daemon
# again whatever happened.
#
# Every task param is read once, here at the top, and declared in task.yml; the script's own
# variables are lowercase.
set -euo pipefail

CONFIG="${CONFIG:-buildpack/airgap-check.yaml}"
APP="${APP:-}"
BUILDPACKS="${BUILDPACKS:-}"
STACK_IMAGE="${STACK_IMAGE:-}"
STACK_IMAGE_TARBALL="${STACK_IMAGE_TARBALL:-}"
ALLOWLIST="${ALLOWLIST:-}"
TIMEOUT="${TIMEOUT:-}"
EXTRA_ARGS="${EXTRA_ARGS:-}"
REPORTS="${REPORTS:-reports}"
AIRGAP_CHECK_SOURCE="${AIRGAP_CHECK_SOURCE:-airgap-check}"
AIRGAP_CHECK_BIN="${AIRGAP_CHECK_BIN:-}"
INSTALL_PACKAGES="${INSTALL_PACKAGES:-true}"
START_DOCKERD="${START_DOCKERD:-true}"
CGROUP_SETUP="${CGROUP_SETUP:-true}"
DOCKER_DATA_ROOT="${DOCKER_DATA_ROOT:-docker-data}"
DOCKER_STORAGE_DRIVER="${DOCKER_STORAGE_DRIVER:-}"
DOCKERD_TIMEOUT="${DOCKERD_TIMEOUT:-60}"
DOCKER_SOCKET="${DOCKER_SOCKET:-/var/run/docker.sock}"

say() { printf 'airgap-check task: %s\n' "$*" >&2; }
# die CODE MESSAGE: 2 for a wrong param or input, 3 for an environment that prevents a verdict
# (the same meanings as airgap-check's own exit codes).
die() {
  local code=$1
  shift
  say "error: $*"
  exit "$code"
}
is_true() { case "$1" in true | yes | 1) return 0 ;; *) return 1 ;; esac }

workdir="$(pwd)"
[ "$(id -u)" = 0 ] || die 3 "must run as root (Concourse task containers do); airgap-check needs root"
case "$DOCKERD_TIMEOUT" in '' | *[!0-9]*) die 2 "DOCKERD_TIMEOUT must be a number of seconds, not '$DOCKERD_TIMEOUT'" ;; esac

# ---- inputs: checked before anything is started ----
# The configuration file when it is there (CONFIG=none reads none); without one, the app and the
# buildpack are the `app` and `buildpack` inputs, as before there was a configuration file.
config=""
if [ "$CONFIG" != none ] && [ -f "$CONFIG" ]; then
  config="$CONFIG"
else
  APP="${APP:-app}"
  BUILDPACKS="${BUILDPACKS:-buildpack}"
fi
[ -z "$APP" ] || [ -d "$APP" ] || die 2 "APP: no directory '$APP' (relative to the task's working directory: $workdir)"
set -f # the lists below are split on whitespace, never globbed
buildpacks=()
for bp in $BUILDPACKS; do
  [ -e "$bp" ] || die 2 "BUILDPACKS: no buildpack '$bp'"
  buildpacks+=("$bp")
done
# shellcheck disable=SC2206 # EXTRA_ARGS is split on whitespace on purpose
extra=($EXTRA_ARGS)
set +f
[ -n "$config" ] || [ "${#buildpacks[@]}" -gt 0 ] || die 2 "BUILDPACKS names no buildpack (and there is no configuration file at CONFIG '$CONFIG')"
[ -z "$ALLOWLIST" ] || [ -f "$ALLOWLIST" ] || die 2 "ALLOWLIST: no file '$ALLOWLIST'"

# ---- what has to be installed ----
agc=""
if [ -n "$AIRGAP_CHECK_BIN" ]; then
  [ -x "$AIRGAP_CHECK_BIN" ] || die 2 "AIRGAP_CHECK_BIN: '$AIRGAP_CHECK_BIN' is not an executable"
  agc="$AIRGAP_CHECK_BIN"
elif command -v airgap-check >/dev/null; then
  agc="$(command -v airgap-check)"
fi

packages=()
if is_true "$START_DOCKERD" && ! command -v dockerd >/dev/null; then
  packages+=(docker.io iptables)
fi
if [ -z "$agc" ]; then
  if ! { command -v pkg-config >/dev/null && pkg-config --exists libpcap; }; then
    packages+=(libpcap-dev pkg-config)
  fi
  case "$AIRGAP_CHECK_SOURCE" in
    *://* | git@*) command -v git >/dev/null || packages+=(git) ;;
    *) [ -f "$AIRGAP_CHECK_SOURCE/Cargo.toml" ] || die 2 "AIRGAP_CHECK_SOURCE: '$AIRGAP_CHECK_SOURCE' is neither a git URL nor a checkout of airgap-check (or set AIRGAP_CHECK_BIN)" ;;
  esac
fi
if [ "${#packages[@]}" -gt 0 ]; then
  if is_true "$INSTALL_PACKAGES" && command -v apt-get >/dev/null; then
    say "installing ${packages[*]} (use an image that has them to skip this: ci/concourse/image/Dockerfile)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    die 3 "the image lacks ${packages[*]} (set INSTALL_PACKAGES=true on a Debian/Ubuntu image, or use an image built from ci/concourse/image/Dockerfile)"
  fi
fi

# ---- Docker daemon ----
dockerd_pid=""
# shellcheck disable=SC2329 # invoked by the EXIT trap
stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  say "stopping dockerd"
  kill -TERM "$dockerd_pid" 2>/dev/null || return 0
  local _
  for _ in $(seq 1 20); do
    kill -0 "$dockerd_pid" 2>/dev/null || return 0
    sleep 1
  done
  say "dockerd did not stop within 20 s: killing it"
  kill -KILL "$dockerd_pid" 2>/dev/null || true
}
trap stop_dockerd EXIT

# Let dockerd create cgroups of its own inside this container's.
setup_cgroups() {
  local cg=/sys/fs/cgroup
  if [ -f "$cg/cgroup.controllers" ]; then
    # cgroup v2: controllers can be handed to child cgroups only by a cgroup with no processes of
    # its own, so every process of this container moves into a leaf first.
    mkdir -p "$cg/task-init"
    local pid
    while read -r pid; do
      echo "$pid" >"$cg/task-init/cgroup.procs" 2>/dev/null || true
    done <"$cg/cgroup.procs"
    local c controllers
    read -r -a controllers <"$cg/cgroup.controllers" || true
    for c in "${controllers[@]}"; do
      echo "+$c" >"$cg/cgroup.subtree_control" 2>/dev/null || true
    done
  elif [ -d "$cg" ]; then
    # cgroup v1: each hierarchy this process is in must be mounted, read-write.
    mountpoint -q "$cg" || mount -t tmpfs -o uid=0,gid=0,mode=0755 cgroup "$cg"
    mount -o remount,rw "$cg" 2>/dev/null || true
    local subsystems opts
    while IFS=: read -r _ subsystems _; do
      [ -n "$subsystems" ] || continue # the v2 entry of a hybrid setup
      case "$subsystems" in
        name=*) opts="none,$subsystems" ;;
        *) opts="$subsystems" ;;
      esac
      mkdir -p "$cg/${subsystems#name=}"
      mountpoint -q "$cg/${subsystems#name=}" ||
        mount -n -t cgroup -o "$opts" cgroup "$cg/${subsystems#name=}" || true
    done </proc/self/cgroup
  fi
}

if is_true "$START_DOCKERD"; then
  if is_true "$CGROUP_SETUP"; then
    # Never rearrange a whole machine's cgroups: only a container's, whose first process is not
    # the machine's init.
    case "$(cat /proc/1/comm 2>/dev/null)" in
      systemd | init) say "not in a container (process 1 is $(cat /proc/1/comm)): cgroups left as they are" ;;
      *) setup_cgroups ;;
    esac
  fi
  mkdir -p "$DOCKER_DATA_ROOT"
  data_root="$(cd "$DOCKER_DATA_ROOT" && pwd)"
  mkdir -p "$REPORTS"
  dockerd_log="$REPORTS/dockerd.log"
  # The docker CLI and airgap-check both find the daemon through DOCKER_HOST.
  export DOCKER_HOST="unix://$DOCKER_SOCKET"
  dockerd_args=(--data-root "$data_root" --host "$DOCKER_HOST")
  [ -z "$DOCKER_STORAGE_DRIVER" ] || dockerd_args+=(--storage-driver "$DOCKER_STORAGE_DRIVER")
  say "starting dockerd (data root $data_root; log $REPORTS/dockerd.log)"
  dockerd "${dockerd_args[@]}" >"$dockerd_log" 2>&1 &
  dockerd_pid=$!
  waited=0
  until [ -S "$DOCKER_SOCKET" ] && docker info >/dev/null 2>&1; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      dockerd_pid=""
      tail -n 20 "$dockerd_log" >&2 || true
      die 3 "dockerd exited before it was ready (is the task step privileged: true?)"
    fi
    if [ "$waited" -ge "$DOCKERD_TIMEOUT" ]; then
      tail -n 20 "$dockerd_log" >&2 || true
      die 3 "dockerd was not ready after ${DOCKERD_TIMEOUT} s (DOCKERD_TIMEOUT)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "dockerd is ready"
fi

# ---- the stack image ----
if [ -n "$STACK_IMAGE_TARBALL" ]; then
  tarball="$STACK_IMAGE_TARBALL"
  named=""
  if [ -d "$tarball" ]; then
    # A registry-image resource fetched with `params: {format: oci}`: image.tar, repository, tag.
    if [ -f "$tarball/repository" ] && [ -f "$tarball/tag" ]; then
      named="$(cat "$tarball/repository"):$(cat "$tarball/tag")"
    fi
    tarball="$tarball/image.tar"
  fi
  [ -f "$tarball" ] || die 2 "STACK_IMAGE_TARBALL: no image tarball at '$tarball'"
  say "loading the stack image from $tarball"
  load_out="$(docker load -i "$tarball")" || die 3 "docker load -i $tarball failed"
  printf '%s\n' "$load_out" >&2
  loaded="$(printf '%s\n' "$load_out" | sed -n -e 's/^Loaded image: //p' -e 's/^Loaded image ID: //p' | head -n 1)"
  [ -n "$STACK_IMAGE" ] || STACK_IMAGE="${named:-$loaded}"
  if [ -n "$loaded" ] && [ -n "$STACK_IMAGE" ] && [ "$loaded" != "$STACK_IMAGE" ]; then
    docker tag "$loaded" "$STACK_IMAGE"
  fi
fi

# ---- airgap-check itself ----
if [ -z "$agc" ]; then
  tools="$workdir/cargo-cache/install"
  export CARGO_TARGET_DIR="$workdir/cargo-cache/target"
  command -v cargo >/dev/null || die 3 "cargo is not installed in the task image (use rust:1-bookworm or an image built from ci/concourse/image/Dockerfile), and no airgap-check binary was given (AIRGAP_CHECK_BIN)"
  case "$AIRGAP_CHECK_SOURCE" in
    *://* | git@*)
      say "building airgap-check from $AIRGAP_CHECK_SOURCE"
      cargo install --locked --root "$tools" --git "$AIRGAP_CHECK_SOURCE" airgap-check
      ;;
    *)
      say "building airgap-check from $AIRGAP_CHECK_SOURCE"
      cargo install --locked --root "$tools" --path "$AIRGAP_CHECK_SOURCE"
      ;;
  esac
  agc="$tools/bin/airgap-check"
fi

# ---- the run ----
mkdir -p "$REPORTS"
args=()
[ -z "$config" ] || args+=(--config "$config")
[ -z "$APP" ] || args+=(--app "$APP")
for bp in "${buildpacks[@]}"; do
  args+=(--buildpack "$bp")
done
[ -z "$STACK_IMAGE" ] || args+=(--stack-image "$STACK_IMAGE")
[ -z "$ALLOWLIST" ] || args+=(--allowlist "$ALLOWLIST")
[ -z "$TIMEOUT" ] || args+=(--timeout "$TIMEOUT")
args+=(--json "$REPORTS/airgap-check.json" --junit "$REPORTS/junit.xml" --pcap "$REPORTS/capture.pcap")
args+=("${extra[@]}")

say "airgap-check ${args[*]}"
set +e
"$agc" "${args[@]}"
code=$?
set -e

verdict=""
if [ -s "$REPORTS/airgap-check.json" ]; then
  if command -v jq >/dev/null; then
    verdict="$(jq -r '.verdict' "$REPORTS/airgap-check.json" 2>/dev/null || true)"
  elif command -v python3 >/dev/null; then
    verdict="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "$REPORTS/airgap-check.json" 2>/dev/null || true)"
  fi
fi
case "$code" in
  0) say "pass${verdict:+ (verdict $verdict)}" ;;
  1) say "FAIL (exit 1): the buildpack reached for the network, or a phase failed; reports in $REPORTS/" ;;
  2) say "bad input (exit 2): see airgap-check's message above" ;;
  3) say "inconclusive (exit 3): the run could not prove anything; see the notes above" ;;
  *) say "airgap-check exited $code" ;;
esac
exit "$code"
