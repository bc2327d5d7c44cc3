#!/usr/bin/env bash
# Run time at the users' sizes, each beside the bare minimum of the same work measured in the same
# run (bench/lib.sh), alternating, RUNS pairs, medians:
#   - against the buildpack's size: the clean fixture's scripts plus SIZES MB of incompressible
#     dependencies (files of 8 MB, as a cached buildpack's are), as a directory and as a zip; every
#     sealed zip run starts with an empty cache of extracted zips (a maintainer repackaged);
#   - against the number of apps: APPS copies of the hello app in one run (--jobs JOBS),
#     beside as many bare builds and runs, as many at once (JOBS, default 4 per CPU, for both);
#     then the engine's own floor: APPS containers that run nothing, started and removed at once.
# Peak memory of airgap-check (GNU time) is printed with each row.
#
#   bench/size.sh                                # SIZES="10 100 800" APPS="1 6 20" RUNS=3
#   ENGINE=26 SIZES="800" APPS="" bench/size.sh
#
# Needs root, Docker, python3, GNU time, bc (`scripts/install-deps.sh bench`); about 3 GB of disk
# under $TMPDIR while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SIZES=${SIZES-"10 100 800"}
APPS=${APPS-"1 6 20"}
RUNS=${RUNS:-3}
JOBS=${JOBS:-$((4 * $(nproc)))}
use_engine
build_agc

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A buildpack of $1 MB: the clean fixture's scripts and dependencies/<n>/dep.tgz of random bytes.
make_buildpack() {
  local mb=$1 dir=$work/bp-$1 each=$(( $1 < 8 ? $1 : 8 )) left=$1 n=0
  cp -r fixtures/buildpacks/clean "$dir"
  while [ "$left" -gt 0 ]; do
    mkdir -p "$dir/dependencies/$n"
    head -c "$((each << 20))" /dev/urandom > "$dir/dependencies/$n/dep.tgz"
    left=$((left - each)); n=$((n + 1))
  done
  python3 - "$dir" "$work/bp-$mb.zip" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
    for root, dirs, files in os.walk(src):
        for f in sorted(files):
            p = os.path.join(root, f)
            z.write(p, os.path.relpath(p, src))
PY
}

# "seconds peak-KiB" of one sealed run of the hello app with buildpack $1 and a fresh zip cache.
sealed_with() {
  local bp=$1 cache; cache=$(mktemp -d -p "$work")
  local t0; t0=$(now)
  AIRGAP_CHECK_CACHE=$cache /usr/bin/time -f %M -o "$work/rss" "$AGC" --app fixtures/apps/hello \
    --buildpack "$bp" --stack-image "$STACK" >/dev/null 2>&1
  echo "$(echo "$(now) - $t0" | bc) $(cat "$work/rss")"
  rm -rf "$cache"
}

# "seconds peak-KiB" of one sealed run of $1 apps.
sealed_apps() {
  local args=() i
  for i in $(seq "$1"); do args+=(--app "$work/apps/$i"); done
  local t0; t0=$(now)
  /usr/bin/time -f %M -o "$work/rss" "$AGC" "${args[@]}" --jobs "$JOBS" \
    --buildpack fixtures/buildpacks/clean --stack-image "$STACK" >/dev/null 2>&1
  echo "$(echo "$(now) - $t0" | bc) $(cat "$work/rss")"
}

# $1 bare runs at once (JOBS at a time), each its own build.
bare_apps() {
  seq "$1" | xargs -P "$JOBS" -I{} bash -c '. bench/lib.sh; bare "$0/apps-ctx/{}" {}' "$work" || return 1
}

# $1 containers of the stack, each only started and removed (`docker run --rm --network none
# stack true`), as many at once as JOBS allows: what the engine alone costs for that many apps,
# whatever runs in them.
containers_only() {
  seq "$1" | xargs -P "$JOBS" -I{} docker run --rm --pull never --network none "$STACK" true >/dev/null || return 1
}

row() { printf '%-28s %9s %10s %7s %9s\n' "$@"; }
# Alternate RUNS pairs of `bare-command` and `sealed-command`; print the row of medians.
measure() {
  local label=$1 bare_cmd=$2 sealed_cmd=$3 b=() s=() m=() i out
  for i in $(seq "$RUNS"); do
    if [ $((i % 2)) -eq 1 ]; then b+=("$(timed $bare_cmd)"); out=$($sealed_cmd); else out=$($sealed_cmd); b+=("$(timed $bare_cmd)"); fi
    s+=("${out% *}"); m+=("${out#* }")
  done
  local bm sm; bm=$(printf '%s\n' "${b[@]}" | median); sm=$(printf '%s\n' "${s[@]}" | median)
  row "$label" "$(printf '%.2f' "$bm")" "$(printf '%.2f' "$sm")" "$(printf '%.2f' "$(echo "scale=3; $sm / $bm" | bc)")" \
    "$(( $(printf '%s\n' "${m[@]}" | sort -n | tail -1) >> 10 ))"
}

row "work" "bare (s)" "sealed (s)" "ratio" "peak MiB"
for mb in $SIZES; do
  make_buildpack "$mb"
  mkdir -p "$work/ctx-$mb"; cp -r fixtures/apps/hello "$work/ctx-$mb/app"
  cp -r "$work/bp-$mb" "$work/ctx-$mb/bp"; bare_context "$work/ctx-$mb"
  measure "buildpack ${mb} MB, directory" "bare $work/ctx-$mb" "sealed_with $work/bp-$mb"
  measure "buildpack ${mb} MB, zip" "bare $work/ctx-$mb" "sealed_with $work/bp-$mb.zip"
  rm -rf "$work/ctx-$mb" "$work/bp-$mb" "$work/bp-$mb.zip"
done
for n in $APPS; do
  rm -rf "$work/apps" "$work/apps-ctx"; mkdir -p "$work/apps" "$work/apps-ctx"
  for i in $(seq "$n"); do
    # Each copy differs by one file, so no build can reuse another's layers (and a bare build's
    # `rmi` never removes an image another build resolved to), as with real fixture apps.
    cp -r fixtures/apps/hello "$work/apps/$i"; echo "$i" > "$work/apps/$i/.bench-copy"
    mkdir -p "$work/apps-ctx/$i"; cp -r "$work/apps/$i" "$work/apps-ctx/$i/app"
    cp -r fixtures/buildpacks/clean "$work/apps-ctx/$i/bp"; bare_context "$work/apps-ctx/$i"
  done
  measure "$n app(s), clean buildpack" "bare_apps $n" "sealed_apps $n"
done
# The engine's floor for many apps: N containers that do nothing, against one.
if [ -n "$APPS" ]; then
  echo
  printf '%-28s %9s %9s\n' "engine floor" "time (s)" "x one"
  one=""
  for n in $APPS; do
    t=(); for i in $(seq "$RUNS"); do t+=("$(timed containers_only "$n")"); done
    m=$(printf '%s\n' "${t[@]}" | median); [ -n "$one" ] || one=$m
    printf '%-28s %9.2f %9.2f\n' "$n container(s), nothing run" "$m" "$(echo "scale=3; $m / $one" | bc)"
  done
fi
