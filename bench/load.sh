#!/usr/bin/env bash
# Capture under load: a sealed run whose supply phase floods small UDP datagrams for SECS seconds,
# counted four ways in the same run:
#   sent      the sender (examples/udp_flood.rs, built statically, copied into a temporary copy of
#             bench/buildpacks/flood): datagrams the kernel accepted, plus those the veth dropped
#             (ENOBUFS: IP_RECVERR is on);
#   tcpdump   `nsenter --net=/proc/PID/ns/net tcpdump -i eth0` on the container's end of the veth,
#             started as soon as the container's eth0 is up; the flood waits for it (/tmp/flood-go);
#   eth0      the kernel's counters of the container's eth0 (tx, tx_dropped), read from inside its
#             namespace just after the sender ends;
#   airgap    airgap-check's JSON report: the flood flow's packets, capture.dropped, the verdict.
#
#   bench/load.sh                          rates 0 (as fast as possible), 10k, 50k, 100k, 150k pkt/s; 3 runs each
#   RATES="0 200000" RUNS=5 bench/load.sh
#   TARGET=198.18.0.1:7777 bench/load.sh   a disallowed destination: every run fails (exit 1)
#   AGC=/tmp/other/airgap-check bench/load.sh   another build of airgap-check (default: this tree's)
#
# TARGET defaults to 10.200.0.1:7777, which the default allowlist allows, so a run passes when the
# capture saw everything and must be inconclusive (exit 3) when it knows it did not: a run that
# passes while flood packets went unseen is flagged FAIL-OPEN (and the script exits 1). Every address is the sink's inside the sealed run: nothing leaves the machine.
# Needs root, Docker, tcpdump, jq, GNU time (`scripts/install-deps.sh bench`).
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"0 10000 50000 100000 150000"}
RUNS=${RUNS:-3}
SECS=${SECS:-5}
TARGET=${TARGET:-10.200.0.1:7777}
STACK=airgap-check-fixture-stack:busybox
PORT=${TARGET##*:}
AGC=${AGC:-target/release/airgap-check}

[ "$(id -u)" = 0 ] || { echo "error: needs root (nsenter, tcpdump, the sealed run)" >&2; exit 2; }
for t in tcpdump jq nsenter ip docker; do
  command -v "$t" >/dev/null || { echo "error: $t not found: run scripts/install-deps.sh bench" >&2; exit 2; }
done

cargo build --release --quiet --bin airgap-check --example build_stack
target/release/examples/build_stack >/dev/null
work=$(mktemp -d)
agc_pid="" tcpdump_pid=""
cleanup() {
  [ -n "$tcpdump_pid" ] && kill "$tcpdump_pid" 2>/dev/null || true
  if [ -n "$agc_pid" ] && kill -0 "$agc_pid" 2>/dev/null; then
    kill -TERM "$agc_pid" 2>/dev/null || true # airgap-check removes its container and image
    wait "$agc_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
cp -r bench/buildpacks/flood "$work/flood"
# The sender runs on the busybox stack: a static binary (glibc, crt-static). It needs std only, so
# rustc builds it in seconds (a cargo build for a static target would rebuild every dependency).
rustc --edition 2021 -O -C target-feature=+crt-static -C strip=debuginfo \
  examples/udp_flood.rs -o "$work/flood/bin/udp_flood"
if ldd "$work/flood/bin/udp_flood" 2>&1 | grep -q '=>'; then
  echo "error: udp_flood is not static" >&2; exit 1
fi

# The staging container of the airgap-check process $1: its label carries the pid, its name is
# airgap-check-RUN (the image build's containers carry the label too, under random names).
container_of() {
  docker ps -q --filter "label=io.airgap-check.pid=$1" --filter "name=^airgap-check-" | head -n 1
}
# Interface counters as "rx_packets rx_dropped tx_packets tx_dropped", from inside namespace $1.
counters() {
  nsenter --net="$1" ip -s -j link show "$2" 2>/dev/null |
    jq -r '.[0].stats64 | "\(.rx.packets) \(.rx.dropped) \(.tx.packets) \(.tx.dropped)"'
}

# One run at rate $1 into directory $2; prints one result line.
one_run() {
  local rate=$1 d=$2 cid="" cpid="" i
  mkdir -p "$d"
  "$AGC" --app fixtures/apps/hello --buildpack "$work/flood" \
    --stack-image "$STACK" --env "FLOOD_RATE=$rate" --env "FLOOD_TO=$TARGET" \
    --env "FLOOD_SECS=$SECS" --json "$d/report.json" >"$d/out" 2>&1 &
  agc_pid=$!
  for i in $(seq 600); do
    cid=$(container_of "$agc_pid")
    [ -n "$cid" ] && break
    kill -0 "$agc_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$cid" ] || { echo "error: no container for airgap-check $agc_pid" >&2; cat "$d/out" >&2; exit 1; }
  cpid=$(docker inspect -f '{{.State.Pid}}' "$cid")
  [ "$cpid" -gt 0 ] || { echo "error: container $cid has no process" >&2; exit 1; }
  local cns=/proc/$cpid/ns/net
  # The veth is moved in and renamed eth0 by the sealing; wait until it is up.
  for i in $(seq 300); do
    nsenter --net="$cns" ip -o link show eth0 2>/dev/null | grep -q '[<,]UP[,>]' && break
    sleep 0.02
  done
  : >"$d/tcpdump.err"
  nsenter --net="$cns" tcpdump -i eth0 -n -B 32768 -s 96 -w /dev/null "udp and dst port $PORT" \
    2>"$d/tcpdump.err" &
  tcpdump_pid=$!
  for i in $(seq 500); do
    grep -q "listening on" "$d/tcpdump.err" && break
    sleep 0.01
  done
  grep -q "listening on" "$d/tcpdump.err" || { echo "error: tcpdump did not start" >&2; cat "$d/tcpdump.err" >&2; exit 1; }
  docker exec "$cid" touch /tmp/flood-go
  # Follow the sender (a udp_flood process in the container's namespace) until it ends, reading
  # the counters of the container's eth0 as it goes: they die with the container, which
  # airgap-check kills right after the last phase.
  local cnet seen=""
  cnet=$(readlink "$cns")
  for i in $(seq $(((SECS + 20) * 10))); do
    local running=""
    for p in $(pgrep -x udp_flood || true); do
      [ "$(readlink /proc/"$p"/ns/net 2>/dev/null)" = "$cnet" ] && running=1
    done
    [ -n "$running" ] && seen=1
    [ -n "$seen" ] && [ -z "$running" ] && break
    sleep 0.1
  done
  counters "$cns" eth0 >"$d/container.counters" || true
  kill -INT "$tcpdump_pid"
  wait "$tcpdump_pid" 2>/dev/null || true
  tcpdump_pid=""
  local code=0
  wait "$agc_pid" || code=$?
  agc_pid=""

  local line sent enobufs td_cap td_drop c_tx c_txdrop agc agc_drop verdict
  line=$(jq -r '[.phases[].output_tail[]] | map(select(startswith("FLOOD "))) | .[0] // ""' "$d/report.json")
  sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$line")
  enobufs=$(sed -n 's/.* enobufs=\([0-9]*\).*/\1/p' <<<"$line")
  # tcpdump's "received by filter": what reached its ring (on SIGINT it does not read the rest).
  td_cap=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$d/tcpdump.err")
  td_drop=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$d/tcpdump.err")
  c_tx="?" c_txdrop="?"
  [ -s "$d/container.counters" ] && read -r _ _ c_tx c_txdrop <"$d/container.counters"
  agc=$(jq --argjson port "$PORT" '[.flows[] | select(.protocol == "udp" and .dst_port == $port) | .packets_out] | add // 0' "$d/report.json")
  agc_drop=$(jq -r '.capture.dropped // "null"' "$d/report.json")
  verdict=$(jq -r .verdict "$d/report.json")
  # FAIL-OPEN: a pass although a flood packet went unseen (lost before or in the capture) or the
  # capture reported drops.
  # UNSEEN: flood packets that reached the sink but are neither counted nor reported dropped.
  local flag=""
  if [ -n "$sent" ]; then
    if [ "$code" = 0 ] && { [ "$agc" -lt "$sent" ] || [ "${enobufs:-0}" -gt 0 ] ||
      [ "$agc_drop" != 0 ]; }; then
      flag=FAIL-OPEN
    elif [ "$agc_drop" != null ] && [ "$((agc + agc_drop))" -lt "$sent" ]; then
      flag=UNSEEN
    fi
  fi
  echo "$rate ${sent:-?} ${enobufs:-?} ${td_cap:-?} ${td_drop:-?} $c_tx $c_txdrop $agc $agc_drop $verdict $code $flag"
}

softnet_drops() {
  local s=0 d
  while read -r _ d _; do s=$((s + 16#$d)); done </proc/net/softnet_stat
  echo "$s"
}

echo "target $TARGET, $SECS s per run, $RUNS runs per rate (rate 0: as fast as possible)"
fmt='%-7s %3s %9s %8s %9s %8s %9s %8s %9s %9s %-12s %4s %s\n'
# sent: datagrams that crossed the veth (sender's count); enobufs: dropped by the veth (sender's
# count); tcpdump/td_drop: tcpdump on the container's eth0; eth0_tx/tx_drop: the kernel's counters
# of the container's eth0 (all packets); airgap: the flood flow's packets in the JSON report;
# agc_drop: the report's capture.dropped.
# shellcheck disable=SC2059
printf "$fmt" rate run sent enobufs tcpdump td_drop eth0_tx tx_drop airgap agc_drop verdict exit ""
results=$work/results
: >"$results"
sn0=$(softnet_drops)
for rate in $RATES; do
  for r in $(seq "$RUNS"); do
    one_run "$rate" "$work/$rate-$r" >"$work/row"
    cat "$work/row" >>"$results"
    read -r -a f <"$work/row"
    # shellcheck disable=SC2059
    printf "$fmt" "${f[0]}" "$r" "${f[1]}" "${f[2]}" "${f[3]}" "${f[4]}" "${f[5]}" "${f[6]}" \
      "${f[7]}" "${f[8]}" "${f[9]}" "${f[10]}" "${f[11]:-}"
  done
done
sn1=$(softnet_drops)
echo "backlog drops on this host during the bench (/proc/net/softnet_stat, all interfaces): $((sn1 - sn0))"

echo
echo "medians per rate over $RUNS runs; reference: tcpdump on the container's eth0 in the same run"
printf '%-7s %10s %10s %10s %10s %12s %10s %s\n' rate "sent/s" tcpdump airgap "airgap/tcpdump" "loss vs sent" "agc_drop" verdicts
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for rate in $RATES; do
  rows=$(awk -v r="$rate" '$1 == r' "$results")
  s=$(awk '{print $2}' <<<"$rows" | median)
  t=$(awk '{print $4}' <<<"$rows" | median)
  a=$(awk '{print $8}' <<<"$rows" | median)
  ratio=$(awk '$4 > 0 {printf "%.6f\n", $8 / $4}' <<<"$rows" | median)
  loss=$(awk '$2 > 0 {printf "%.6f\n", 1 - $8 / $2}' <<<"$rows" | median)
  dr=$(awk '{print $9}' <<<"$rows" | median)
  v=$(awk '{print $10 "(" $11 ")" ($12 ? "," $12 : "")}' <<<"$rows" | sort | uniq -c |
    awk '{printf "%s%sx %s", (NR > 1 ? " " : ""), $1, $2}')
  printf '%-7s %10.0f %10s %10s %14s %12s %10s %s\n' "$rate" "$(echo "$s / $SECS" | bc -l)" "$t" "$a" "$ratio" "$loss" "$dr" "$v"
done
if grep -q FAIL-OPEN "$results"; then
  echo "FAIL-OPEN: a run passed although flood packets went unseen" >&2
  exit 1
fi
