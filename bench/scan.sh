#!/usr/bin/env bash
# A port scan of many distinct flows: wall time and peak memory of airgap-check, two ways.
#
# 1. analyze: captures of a SYN scan with FLOWS distinct flows (examples/gen_scan_capture.rs,
#    generated here, 2.1 packets a flow), `airgap-check analyze` printing its console summary only,
#    then writing --json, then --junit; the smallest capture is the baseline the others are compared
#    with (linear: time and memory above the baseline grow like the flow count).
# 2. live (LIVE=0 to skip; needs root and Docker): sealed runs whose supply phase connect-scans
#    LIVE_HOSTS x 1,000 (address, port) pairs (examples/tcp_scan.rs, built statically, copied into a
#    temporary copy of bench/buildpacks/scan; every address is the sink's, nothing leaves the
#    machine; the sink accepts, so each pair is a whole connection of six packets); 0 hosts is the
#    baseline: the same run with nothing scanned.
#
#   bench/scan.sh
#   FLOWS="25000 100000" RUNS=5 LIVE=0 bench/scan.sh
#
# Medians of RUNS runs (default 3); peak RSS is the largest of the runs. Needs GNU time and jq
# (`scripts/install-deps.sh bench`).
set -euo pipefail
cd "$(dirname "$0")/.."

FLOWS=${FLOWS:-"25000 50000 100000 200000"}
RUNS=${RUNS:-3}
LIVE=${LIVE:-1}
LIVE_HOSTS=${LIVE_HOSTS:-"0 25 50 100"}
STACK=airgap-check-fixture-stack:busybox

for t in /usr/bin/time jq bc; do
  command -v "$t" >/dev/null || { echo "error: $t not found: run scripts/install-deps.sh bench" >&2; exit 2; }
done

cargo build --release --quiet --bin airgap-check --example gen_scan_capture
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
agc=target/release/airgap-check

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# timed N EXPECTED_EXIT CMD...: N runs; prints "median_seconds max_rss_kib"
timed() {
  local n=$1 want=$2 times=() rss=0 secs kib code
  shift 2
  for _ in $(seq "$n"); do
    code=0
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || code=$?
    if [ "$code" != "$want" ]; then
      echo "error: exit $code (expected $want): $*" >&2; cat "$work/stderr" >&2; exit 1
    fi
    read -r secs kib < <(tail -n 1 "$work/time")
    times+=("$secs")
    [ "$kib" -gt "$rss" ] && rss=$kib
  done
  echo "$(printf '%s\n' "${times[@]}" | median) $rss"
}

echo "== analyze: SYN-scan captures, median of $RUNS runs"
modes=("console" "--json" "--junit")
printf '%-8s %9s %6s  %-8s %8s %9s %7s %9s %13s\n' flows packets MiB report seconds "RSS MiB" "s/base" "RSS/base" "KiB/flow>base"
declare -A base_s base_rss
base_flows=""
for f in $FLOWS; do
  cap=$work/scan-$f.pcap
  target/release/examples/gen_scan_capture --flows "$f" --out "$cap" 2>/dev/null
  cat "$cap" >/dev/null # from the page cache
  packets=$(((f * 21 + 9) / 10))
  size=$(du -m "$cap" | cut -f1)
  for m in "${modes[@]}"; do
    extra=()
    case $m in
      --json) extra=(--json "$work/r.json") ;;
      --junit) extra=(--junit "$work/r.xml") ;;
    esac
    # exit 1: every flow of the scan is disallowed
    read -r s rss < <(timed "$RUNS" 1 "$agc" analyze --pcap "$cap" "${extra[@]}")
    if [ "$m" = --json ]; then
      got=$(jq .summary.flows "$work/r.json")
      [ "$got" = "$f" ] || { echo "error: the report has $got flows, expected $f" >&2; exit 1; }
    fi
    rm -f "$work/r.json" "$work/r.xml"
    if [ -z "${base_s[$m]:-}" ]; then base_s[$m]=$s base_rss[$m]=$rss; fi
    awk -v f="$f" -v p="$packets" -v mb="$size" -v m="$m" -v s="$s" -v r="$rss" \
      -v bs="${base_s[$m]}" -v br="${base_rss[$m]}" -v bf="${base_flows:-$f}" 'BEGIN {
        if (bs <= 0) bs = 0.01;
        per = (f > bf) ? sprintf("%.2f", (r - br) / (f - bf)) : "-";
        printf "%-8d %9d %6d  %-8s %8.2f %9.1f %7.2f %9.2f %13s\n",
          f, p, mb, m, s, r / 1024, s / bs, r / br, per }'
  done
  [ -n "$base_flows" ] || base_flows=$f
  rm -f "$cap"
done
echo "(s/base, RSS/base: against the same report at $base_flows flows; KiB/flow>base: peak RSS above that, per extra flow)"

[ "$LIVE" = 1 ] || exit 0
[ "$(id -u)" = 0 ] || { echo "error: the live scan needs root (LIVE=0 to skip it)" >&2; exit 2; }
cargo build --release --quiet --example build_stack
target/release/examples/build_stack >/dev/null
cp -r bench/buildpacks/scan "$work/scan"
# The scanner runs on the busybox stack: a static binary. It needs std only, so rustc builds it in
# seconds (a cargo build for a static target would rebuild every dependency of the crate).
rustc --edition 2021 -O -C target-feature=+crt-static -C strip=debuginfo \
  examples/tcp_scan.rs -o "$work/scan/bin/tcp_scan"
if ldd "$work/scan/bin/tcp_scan" 2>&1 | grep -q '=>'; then
  echo "error: tcp_scan is not static" >&2; exit 1
fi

echo
echo "== live: sealed runs whose supply phase connect-scans HOSTS x 1000 pairs, $RUNS runs each (alternating)"
: >"$work/live"
for r in $(seq "$RUNS"); do
  for h in $LIVE_HOSTS; do
    code=0
    /usr/bin/time -f "%e %M" -o "$work/time" "$agc" --app fixtures/apps/hello \
      --buildpack "$work/scan" --stack-image "$STACK" --env "SCAN_HOSTS=$h" \
      --json "$work/live.json" >/dev/null 2>"$work/stderr" || code=$?
    # 0 hosts: nothing to judge but the canary, a pass; otherwise every scanned flow fails
    want=1; [ "$h" = 0 ] && want=0
    if [ "$code" != "$want" ]; then
      echo "error: live scan of $h hosts exited $code (expected $want)" >&2; cat "$work/stderr" >&2; exit 1
    fi
    read -r secs kib < <(tail -n 1 "$work/time")
    line=$(jq -r '[.phases[].output_tail[]] | map(select(startswith("SCAN "))) | .[0] // ""' "$work/live.json")
    started=$(sed -n 's/.* started=\([0-9]*\).*/\1/p' <<<"$line")
    scan_s=$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$line")
    flows=$(jq '[.flows[] | select(.protocol == "tcp" and (.remote | startswith("198.18.")))] | length' "$work/live.json")
    packets=$(jq .capture.packets "$work/live.json")
    dropped=$(jq -r '.capture.dropped // "null"' "$work/live.json")
    verdict=$(jq -r .verdict "$work/live.json")
    echo "$h $secs $kib ${started:-0} ${scan_s:-0} $flows $packets $dropped $verdict" >>"$work/live"
    echo "  run $r, $h hosts: ${secs} s, $((kib / 1024)) MiB, ${started:-0} SYNs in ${scan_s:-0} s, $flows flows judged, $packets packets, $dropped dropped, $verdict"
  done
done
echo
printf '%-6s %8s %9s %9s %10s %10s %9s %10s %8s\n' hosts pairs "wall s" "RSS MiB" "scan s" "flows" "flows/SYN" "wall-base" dropped
lb_s="" lb_rss=""
for h in $LIVE_HOSTS; do
  rows=$(awk -v h="$h" '$1 == h' "$work/live")
  s=$(awk '{print $2}' <<<"$rows" | median)
  rss=$(awk '{print $3}' <<<"$rows" | sort -n | tail -n 1)
  st=$(awk '{print $4}' <<<"$rows" | median)
  ss=$(awk '{print $5}' <<<"$rows" | median)
  fl=$(awk '{print $6}' <<<"$rows" | median)
  dr=$(awk '{print $8}' <<<"$rows" | sort -n | tail -n 1)
  [ -z "$lb_s" ] && lb_s=$s lb_rss=$rss
  awk -v h="$h" -v s="$s" -v r="$rss" -v st="$st" -v ss="$ss" -v fl="$fl" -v bs="$lb_s" -v dr="$dr" 'BEGIN {
    printf "%-6d %8d %9.2f %9.1f %10.2f %10d %9s %10.2f %8s\n",
      h, h * 1000, s, r / 1024, ss, fl, (st > 0 ? sprintf("%.4f", fl / st) : "-"), s - bs, dr }'
done
echo "(wall-base: seconds more than the $(echo "$LIVE_HOSTS" | awk '{print $1}')-host run; RSS: the largest of the runs)"
