#!/usr/bin/env bash
# Throughput of `airgap-check analyze` against `tcpdump -nr FILE > /dev/null` and
# `tshark -r FILE -q -z conv,tcp`, on the same generated capture, in the same run.
#
#   bench/analyze.sh                      5,000,000 packets, 20,000 flows, 3 runs each (tshark: 1)
#   PACKETS=1000000 RUNS=5 bench/analyze.sh
#
# Prints one row per tool: median wall time, packets per second, peak RSS, and the ratio of
# airgap-check's packets per second to that tool's. Needs tcpdump, tshark and GNU time
# (`scripts/install-deps.sh bench`, which `make bench-analyze` runs).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKETS=${PACKETS:-5000000}
FLOWS=${FLOWS:-20000}
RUNS=${RUNS:-3}
TSHARK_RUNS=${TSHARK_RUNS:-1}

for t in tcpdump tshark /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "error: $t not found: run scripts/install-deps.sh bench" >&2; exit 2; }
done

cargo build --release --quiet --bin airgap-check --example gen_bench_capture
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cap="$dir/bench.pcap"
target/release/examples/gen_bench_capture --packets "$PACKETS" --flows "$FLOWS" --out "$cap"
size=$(du -m "$cap" | cut -f1)
cat "$cap" > /dev/null # warm the page cache so every tool reads from memory

# run NAME N CMD...: N timed runs; prints "median_seconds max_rss_kib"
run() {
  local name=$1 n=$2; shift 2
  local times=() rss=0
  for _ in $(seq "$n"); do
    /usr/bin/time -f "%e %M" -o "$dir/time" "$@" > /dev/null 2> "$dir/stderr" || {
      # airgap-check exits 1 when the capture holds disallowed flows; anything else is a failure.
      code=$?
      if [ "$name" != airgap-check ] || [ "$code" -ne 1 ]; then
        echo "error: $name failed (exit $code):" >&2; cat "$dir/stderr" >&2; exit 1
      fi
    }
    read -r secs kib < <(tail -n 1 "$dir/time")
    times+=("$secs")
    [ "$kib" -gt "$rss" ] && rss=$kib
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$median $rss"
}

read -r ours_s ours_rss < <(run airgap-check "$RUNS" target/release/airgap-check analyze --pcap "$cap")
read -r tcpdump_s tcpdump_rss < <(run tcpdump "$RUNS" tcpdump -nr "$cap")
read -r tshark_s tshark_rss < <(run tshark "$TSHARK_RUNS" tshark -r "$cap" -q -z conv,tcp)

echo
echo "capture: $PACKETS packets, $FLOWS flows, ${size} MiB; median of $RUNS runs (tshark: $TSHARK_RUNS)"
printf '%-28s %10s %14s %12s %22s\n' tool seconds packets/s "peak RSS" "airgap-check speed-up"
row() {
  awk -v name="$1" -v s="$2" -v rss="$3" -v p="$PACKETS" -v ours="$ours_s" 'BEGIN {
    if (s <= 0) s = 0.01; o = ours; if (o <= 0) o = 0.01;
    printf "%-28s %10.2f %14.0f %9.1f MiB %21.1fx\n", name, s, p / s, rss / 1024, s / o }'
}
row "airgap-check analyze" "$ours_s" "$ours_rss"
row "tcpdump -nr" "$tcpdump_s" "$tcpdump_rss"
row "tshark -q -z conv,tcp" "$tshark_s" "$tshark_rss"
