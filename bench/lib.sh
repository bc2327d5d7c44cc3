# Shared by the staging benchmarks (sourced): the engine to measure on, the bare minimum of the same
# work, the sealed run, medians.
#
# ENGINE=machine (default: whatever DOCKER_HOST says, else the machine's engine) or ENGINE=26: the
# second engine of this machine kind (Engine 26.1 on overlay2), started by
# ../shared/engines/docker26.sh (or /work/shared/engines/docker26.sh) for the benchmark.

STACK=airgap-check-fixture-stack:busybox
AGC=${AGC:-target/release/airgap-check}

use_engine() {
  case "${ENGINE:-machine}" in
    machine) ;;
    26)
      local s
      for s in ../shared/engines/docker26.sh /work/shared/engines/docker26.sh; do
        if [ -x "$s" ]; then eval "$("$s" start 2>/dev/null)"; break; fi
      done
      [ -n "${DOCKER_HOST:-}" ] || { echo "error: cannot start Engine 26 (../shared/engines/docker26.sh)" >&2; exit 2; }
      ;;
    *) echo "error: ENGINE is machine or 26" >&2; exit 2 ;;
  esac
  echo "engine: $(docker version --format '{{.Server.Version}}') at ${DOCKER_HOST:-unix:///var/run/docker.sock}" >&2
}

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The least the same work can cost: `docker build` of FROM stack / ADD app / ADD buildpack (no
# RUN; --no-cache: a first run, as a repackaged buildpack is), then `docker run --network none` of the phases in one container, then the image removed.
# $1: a folder holding app/ and bp/ (a buildpack folder).
bare_context() {
  local ctx=$1
  printf 'FROM %s\nADD app /tmp/app\nADD bp /tmp/buildpacks/0\n' "$STACK" > "$ctx/Dockerfile"
}
BARE_PHASES='set -e; mkdir -p /tmp/cache /tmp/deps/0 /tmp/profile.d; b=/tmp/buildpacks/0/bin; cd /tmp/app; $b/detect /tmp/app; $b/supply /tmp/app /tmp/cache /tmp/deps 0; $b/finalize /tmp/app /tmp/cache /tmp/deps 0 /tmp/profile.d; $b/release /tmp/app'
# A failed build stops the benchmark (a baseline that did less work is no baseline).
bare() {
  local ctx=$1 tag=airgap-check-bench-bare-$$-${2:-0} err
  err=$(mktemp)
  if ! docker build -q --no-cache --network none -t "$tag" "$ctx" >/dev/null 2>"$err"; then
    echo "error: the bare build of $ctx failed:" >&2; cat "$err" >&2; rm -f "$err"; return 1
  fi
  rm -f "$err"
  local rc=0
  docker run --rm --pull never --network none -e CF_STACK=airgap-check-fixture-stack "$tag" sh -c "$BARE_PHASES" >/dev/null || rc=$?
  docker rmi -f "$tag" >/dev/null
  [ "$rc" -eq 0 ] || { echo "error: the bare run of $ctx failed (exit $rc)" >&2; return "$rc"; }
}

# Seconds taken by a command.
# A failed command stops the whole benchmark, also from inside $(...).
timed() {
  local t0; t0=$(now)
  "$@" || { echo "error: failed: $*" >&2; kill $$; exit 1; }
  echo "$(now) - $t0" | bc
}

build_agc() {
  [ -n "${SKIP_BUILD:-}" ] && return
  cargo build --release --quiet --bin airgap-check --example build_stack
  target/release/examples/build_stack >/dev/null
}
