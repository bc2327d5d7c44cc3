#!/usr/bin/env bash
# Cost of a sealed run against the bare minimum of the same work (bench/lib.sh: `docker build` of
# FROM stack / ADD app / ADD buildpack, no RUN, then one `docker run --network none` of the four
# phases), on the clean fixture, alternating, RUNS pairs. Both remove their image afterwards.
#
#   bench/stage.sh             # 7 pairs on the machine's engine (or DOCKER_HOST's)
#   ENGINE=26 RUNS=9 bench/stage.sh
#
# Prints each pair and the median of the per-pair ratios. Needs root and Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${RUNS:-7}
use_engine
build_agc

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r fixtures/apps/hello "$ctx/app"
cp -r fixtures/buildpacks/clean "$ctx/bp"
bare_context "$ctx"
sealed() {
  "$AGC" --app fixtures/apps/hello --buildpack fixtures/buildpacks/clean --stack-image "$STACK" >/dev/null 2>&1
}

timed bare "$ctx" >/dev/null; timed sealed >/dev/null # warm up both paths once
printf '%-5s %10s %10s %8s\n' pair "bare (s)" "sealed (s)" ratio
ratios=()
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) -eq 1 ]; then b=$(timed bare "$ctx"); s=$(timed sealed); else s=$(timed sealed); b=$(timed bare "$ctx"); fi
  r=$(echo "scale=3; $s / $b" | bc)
  ratios+=("$r")
  printf '%-5s %10.2f %10.2f %8.2f\n' "$i" "$b" "$s" "$r"
done
echo "median sealed/bare ratio over $RUNS alternating pairs: $(printf '%s\n' "${ratios[@]}" | median)x"
