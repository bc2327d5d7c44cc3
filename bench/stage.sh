#!/usr/bin/env bash
# Cost of a sealed run: `airgap-check` on the clean fixture against a bare `docker build` +
# `docker run --network none` of the same phases over the same stack, alternating, RUNS pairs.
# Both remove their image afterwards, so neither profits from the other's build cache.
#
#   bench/stage.sh             # 5 pairs
#   RUNS=9 bench/stage.sh
#
# Prints each pair and the median of the per-pair ratios. Needs root and Docker; builds the
# fixture stack first (no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
STACK=airgap-check-fixture-stack:busybox

cargo build --release --quiet --bin airgap-check --example build_stack
target/release/examples/build_stack >/dev/null

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"; docker rmi -f airgap-check-bench-bare >/dev/null 2>&1 || true' EXIT
mkdir -p "$ctx/buildpacks"
cp -r fixtures/apps/hello "$ctx/app"
cp -r fixtures/buildpacks/clean "$ctx/buildpacks/0"
# The same image airgap-check builds: stack, app, buildpack, lifecycle folders owned by vcap.
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $STACK
USER root
COPY app /tmp/app
COPY buildpacks /tmp/buildpacks
RUN set -e; mkdir -p /tmp/app /tmp/cache /tmp/deps /tmp/profile.d /tmp/env /tmp/deps/0; \
    chown -R vcap /tmp/app /tmp/cache /tmp/deps /tmp/profile.d /tmp/env; chmod -R a+rX /tmp/buildpacks
DOCKERFILE
phases='set -e; b=/tmp/buildpacks/0/bin; cd /tmp/app; $b/detect /tmp/app; $b/supply /tmp/app /tmp/cache /tmp/deps 0; $b/finalize /tmp/app /tmp/cache /tmp/deps 0 /tmp/profile.d; $b/release /tmp/app'

now() { date +%s.%N; }
bare() {
  local t0; t0=$(now)
  docker build -q --network none -t airgap-check-bench-bare "$ctx" >/dev/null 2>&1
  docker run --rm --network none -u vcap -e CF_STACK=airgap-check-fixture-stack airgap-check-bench-bare sh -c "$phases" >/dev/null
  docker rmi -f airgap-check-bench-bare >/dev/null
  echo "$(now) - $t0" | bc
}
sealed() {
  local t0; t0=$(now)
  target/release/airgap-check --app fixtures/apps/hello --buildpack fixtures/buildpacks/clean \
    --stack-image "$STACK" >/dev/null 2>&1
  echo "$(now) - $t0" | bc
}

bare >/dev/null; sealed >/dev/null # warm up both paths once
printf '%-5s %10s %10s %8s\n' pair "bare (s)" "sealed (s)" ratio
ratios=()
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) -eq 1 ]; then b=$(bare); s=$(sealed); else s=$(sealed); b=$(bare); fi
  r=$(echo "scale=3; $s / $b" | bc)
  ratios+=("$r")
  printf '%-5s %10.2f %10.2f %8.2f\n' "$i" "$b" "$s" "$r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median sealed/bare ratio over $RUNS alternating pairs: ${median}x"
