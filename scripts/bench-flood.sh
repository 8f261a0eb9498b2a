#!/usr/bin/env bash
# bench-flood.sh: a carrier's calls through callsign while sources outside
# the trunk flood it, written up in docs/benchmarks.md ("Floods").
#
# Two steps, each on a fresh edge (trunk: 127.0.0.1 only) with one sipp
# answering for every agent (scripts/bench/agent.xml) and one sipp as the
# carrier (scripts/bench/carrier.xml: INVITE, 200, ACK, BYE after HOLD s)
# placing RATE calls/s for DURATION s:
#
#   baseline:  the carrier's calls alone.
#   flood:     the same, while each address of FLOODERS runs a sipp sending
#              one request per call, never retransmitted, at FLOOD_RATE/s
#              (as fast as sipp manages when that is more than it can):
#              test/sipp/flood-invite.xml (an INVITE for the tracking
#              number, which outside the trunk gets 403) or
#              test/sipp/flood-register.xml (a REGISTER without
#              credentials, which gets a 401 challenge). The floods start
#              a second before the first call and stop when the carrier is
#              done.
#
# Per step it prints: the requests the flooders sent and their rate (their
# sipp statistics), what the edge answered them (the growth of its 401 and
# 403 responses: the carrier's calls get neither) and dropped
# (callsign_sip_dropped_total), the sources blocked at the end; the
# carrier's calls completed (sipp's successful calls, checked against the
# edge's answered calls) of those it meant to place; the edge's CPU (per
# cent of one core, over the carrier's run) and its peak RSS; the datagrams
# the kernel dropped on the edge's SIP socket (its receive queue full).
#
# Environment (all optional):
#   RATE          the carrier's calls a second               50
#   DURATION      seconds the carrier places calls for       30
#   HOLD          seconds from the answer to the BYE         0
#   FLOODERS      address:kind of each flooder (invite or register)
#                                                            "127.0.0.2:invite 127.0.0.3:register"
#   FLOOD_RATE    requests a second each flooder aims at     5000
#   AGENTS        agents in the config                       200
#   PORT_BASE     SIP/HTTP/NATS/sipp ports are PORT_BASE + 60/80/422/70/90/100/200/300+
#                                                            7500
#   OUT           where results go                           a new directory under ${TMPDIR:-/tmp}
#   BIN, SIPP     the edge binary and sipp                   bin/callsign, sipp
#
# Quick run:  DURATION=10 scripts/bench-flood.sh
#
# Everything binds loopback addresses (Linux routes all of 127/8 there).
# Every wait is bounded and every process this script starts is killed
# when it exits.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/bin/callsign}
SIPP=${SIPP:-sipp}
RATE=${RATE:-50}
DURATION=${DURATION:-30}
HOLD=${HOLD:-0}
FLOODERS=${FLOODERS:-"127.0.0.2:invite 127.0.0.3:register"}
FLOOD_RATE=${FLOOD_RATE:-5000}
AGENTS=${AGENTS:-200}
PORT_BASE=${PORT_BASE:-7500}
NUMBER=15550100001

EDGE_SIP=$((PORT_BASE + 60))
EDGE_HTTP=$((PORT_BASE + 80))
EDGE_NATS=$((PORT_BASE + 422))
UAC_SIP=$((PORT_BASE + 70))
UAS_SIP=$((PORT_BASE + 90))
UAC_MEDIA=$((PORT_BASE + 100))
UAS_MEDIA=$((PORT_BASE + 200))
FLOOD_PORTS=$((PORT_BASE + 300))

die() { echo "bench-flood: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

for n in "$RATE" "$DURATION" "$HOLD" "$FLOOD_RATE" "$AGENTS"; do
	[[ $n =~ ^[0-9]+$ ]] || die "$n is not a whole number"
done
for f in $FLOODERS; do
	[[ $f =~ ^127\.[0-9.]+:(invite|register)$ ]] || die "FLOODERS: $f is not a loopback address:invite or :register"
	[ "${f%%:*}" != 127.0.0.1 ] || die "FLOODERS: 127.0.0.1 is the trunk's address"
done
[ -x "$BIN" ] || die "$BIN not found: run make build first"
command -v "$SIPP" >/dev/null || die "sipp not found (Debian package sip-tester; make test-deps installs it)"
command -v curl >/dev/null || die "curl not found"

OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/callsign-bench-flood.XXXXXX")}
mkdir -p "$OUT" || die "cannot create $OUT"
HZ=$(getconf CLK_TCK)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- processes: every one started is remembered and killed on exit ----
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

stop() { # pid [signal] [seconds]: the signal (TERM), then KILL after the grace time
	local pid=$1 sig=${2:-TERM} grace=${3:-10} i
	kill -"$sig" "$pid" 2>/dev/null
	for ((i = 0; i < grace * 4; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.25
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	forget "$pid"
}

# ---- measurements ----
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
metrics_to() { curl -s --max-time 3 "http://127.0.0.1:$EDGE_HTTP/metrics" >"$1" 2>/dev/null || : >"$1"; }
metric() { # file name [label]: the sum of a metric over its label sets (matching label, if given)
	awk -v m="$2" -v l="${3:-}" '($1 == m || index($1, m "{") == 1) && (l == "" || index($1, l)) { s += $NF } END { printf "%d\n", s }' "$1"
}
udp_drops() { # port: receive-queue drops of the UDP sockets bound to it
	awk -v p="$(printf '%04X' "$1")" 'NR > 1 { split($2, a, ":"); if (a[2] == p) d += $NF } END { print d + 0 }' /proc/net/udp
}
stat_col() { # file column: a column of the last row of a sipp -trace_stat CSV
	awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } c { v = $c } END { print v + 0 }' "$1" 2>/dev/null || echo 0
}
stat_secs() { # file: seconds sipp ran, from ElapsedTime(C) of the last row
	awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "ElapsedTime(C)") c = i; next } c { v = $c } END { split(v, a, ":"); print a[1] * 3600 + a[2] * 60 + a[3] }' "$1" 2>/dev/null || echo 0
}

gen_config() { # dir
	local dir=$1 i
	{
		cat <<-EOF
			# generated by scripts/bench-flood.sh
			sip:
			  listen: [udp://127.0.0.1:$EDGE_SIP]
			  advertise: 127.0.0.1
			media:
			  address: 127.0.0.1
			  rtp_ports: 10000-65000
			  timeout: 30s
			http:
			  listen: 127.0.0.1:$EDGE_HTTP
			events:
			  nats: embedded
			  embedded_listen: 127.0.0.1:$EDGE_NATS
			storage:
			  dir: $dir/storage
			trunks:
			  carrier:
			    allow: [127.0.0.1]
			numbers:
			  "+$NUMBER": {source: bench, medium: flood, flow: bench}
			flows:
			  bench:
			    steps:
			      - queue: bench
			queues:
			  bench:
			    strategy: round-robin
			    ring_timeout: 20s
			    agents:
		EOF
		for ((i = 1; i <= AGENTS; i++)); do printf '      - a%05d\n' "$i"; done
		echo "agents:"
		for ((i = 1; i <= AGENTS; i++)); do
			printf '  a%05d: {sip: {contact: "sip:a%05d@127.0.0.1:%d"}}\n' "$i" "$i" "$UAS_SIP"
		done
		# A registering agent, for the REGISTER flood to aim at.
		echo '  bob: {sip: {username: bob, password: "bench-flood-secret"}}'
	} >"$dir/callsign.yaml"
}

# run_step name flood(0|1): one step; appends its row to $OUT/results.tsv.
run_step() {
	local name=$1 flood=$2 dir="$OUT/$1"
	local calls=$((RATE * DURATION))
	mkdir -p "$dir"
	gen_config "$dir"
	"$BIN" check -c "$dir/callsign.yaml" >"$dir/check.out" 2>&1 || { cat "$dir/check.out" >&2; die "generated configuration refused"; }
	log "$name: $calls calls at $RATE/s$([ "$flood" = 1 ] && echo ", flooders $FLOODERS at $FLOOD_RATE/s each") ($dir)"

	"$BIN" serve -c "$dir/callsign.yaml" 2>"$dir/edge.log" &
	local edge=$!
	PIDS+=("$edge")
	local i ready=0
	for ((i = 0; i < 120; i++)); do
		if curl -sf --max-time 1 "http://127.0.0.1:$EDGE_HTTP/readyz" >/dev/null 2>&1; then ready=1; break; fi
		kill -0 "$edge" 2>/dev/null || break
		sleep 0.25
	done
	[ "$ready" = 1 ] || { tail -5 "$dir/edge.log" >&2; die "the edge did not become ready"; }

	(cd "$dir" && exec "$SIPP" -sf "$ROOT/scripts/bench/agent.xml" -i 127.0.0.1 -p "$UAS_SIP" -mp "$UAS_MEDIA" \
		-nostdin -trace_stat -stf "$dir/uas-stat.csv" -fd 1 >"$dir/uas.out" 2>&1) &
	local uas=$!
	PIDS+=("$uas")
	sleep 1
	kill -0 "$uas" 2>/dev/null || { tail -5 "$dir/uas.out" >&2; die "the agents' sipp did not start"; }
	metrics_to "$dir/metrics-start.txt"
	local drops0
	drops0=$(udp_drops "$EDGE_SIP")

	local fl=() f ip kind n=0 port
	if [ "$flood" = 1 ]; then
		for f in $FLOODERS; do
			ip=${f%%:*} kind=${f##*:} port=$((FLOOD_PORTS + 10 * n))
			n=$((n + 1))
			(cd "$dir" && exec "$SIPP" "127.0.0.1:$EDGE_SIP" -sf "$ROOT/test/sipp/flood-$kind.xml" \
				-s "$([ "$kind" = register ] && echo bob || echo "$NUMBER")" -i "$ip" -mi "$ip" -bind_local \
				-p "$port" -mp $((port + 2)) -cp $((port + 6)) -r "$FLOOD_RATE" -m $((FLOOD_RATE * (DURATION + 30))) -nr \
				-timeout $((DURATION + 60))s -nostdin -trace_stat -stf "$dir/flood-$n-stat.csv" -fd 1 \
				>"$dir/flood-$n.out" 2>&1) &
			fl+=($!)
			PIDS+=($!)
		done
		sleep 1
	fi

	local e0 t0
	e0=$(cpu_ticks "$edge")
	t0=$(date +%s.%N)
	(cd "$dir" && exec "$SIPP" "127.0.0.1:$EDGE_SIP" -sf "$ROOT/scripts/bench/carrier.xml" -s "$NUMBER" -i 127.0.0.1 \
		-p "$UAC_SIP" -mp "$UAC_MEDIA" -r "$RATE" -m "$calls" -d $((HOLD * 1000)) -recv_timeout 32000 \
		-timeout $((DURATION + HOLD + 60))s -nostdin -trace_stat -stf "$dir/uac-stat.csv" -fd 1 \
		-trace_err -error_file "$dir/uac-errors.log" >"$dir/uac.out" 2>&1) &
	local uac=$! peak_rss=0 r
	PIDS+=("$uac")
	while kill -0 "$uac" 2>/dev/null; do
		r=$(rss_kb "$edge")
		[ "$r" -gt "$peak_rss" ] && peak_rss=$r
		sleep 0.5
	done
	wait "$uac" 2>/dev/null
	forget "$uac"
	local e1 t1
	e1=$(cpu_ticks "$edge")
	t1=$(date +%s.%N)
	metrics_to "$dir/metrics-flood.txt"
	local p
	for p in "${fl[@]}"; do stop "$p" USR1 5; done
	sleep 2
	metrics_to "$dir/metrics-end.txt"
	local drops
	drops=$(($(udp_drops "$EDGE_SIP") - drops0))
	stop "$uas" TERM 5
	stop "$edge" TERM 10

	# ---- the row ----
	local sent=0 secs=0 s st
	for ((i = 1; i <= n; i++)); do
		st="$dir/flood-$i-stat.csv"
		sent=$((sent + $(stat_col "$st" TotalCallCreated)))
		s=$(stat_secs "$st")
		[ "$s" -gt "$secs" ] && secs=$s
	done
	local flood_rate=-
	[ "$secs" -gt 0 ] && flood_rate=$((sent / secs))
	local m0="$dir/metrics-start.txt" m1="$dir/metrics-end.txt"
	local answered403 answered401 dropped blocked
	answered403=$(($(metric "$m1" callsign_sip_responses_total 'code="403"') - $(metric "$m0" callsign_sip_responses_total 'code="403"')))
	answered401=$(($(metric "$m1" callsign_sip_responses_total 'code="401"') - $(metric "$m0" callsign_sip_responses_total 'code="401"')))
	dropped=$(($(metric "$m1" callsign_sip_dropped_total 'reason="rate_limit"') - $(metric "$m0" callsign_sip_dropped_total 'reason="rate_limit"')))
	blocked=$(metric "$dir/metrics-flood.txt" callsign_sip_blocked_sources)
	local ok created edge_answered completed pct
	ok=$(stat_col "$dir/uac-stat.csv" "SuccessfulCall(C)")
	created=$(stat_col "$dir/uac-stat.csv" TotalCallCreated)
	edge_answered=$(($(metric "$m1" callsign_calls_total 'outcome="answered"') - $(metric "$m0" callsign_calls_total 'outcome="answered"')))
	completed=$((ok < edge_answered ? ok : edge_answered))
	pct=$(awk -v c="$completed" -v n="$calls" 'BEGIN { printf "%.2f", 100 * c / n }')
	local wall cpu
	wall=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
	cpu=$(awk -v d=$((e1 - e0)) -v hz="$HZ" -v w="$wall" 'BEGIN { printf "%.0f", 100 * d / hz / w }')
	printf '%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\n' \
		"$name" "$sent" "$flood_rate" "$answered403" "$answered401" "$dropped" "$blocked" \
		"$calls" "$created" "$completed" "$pct" "$cpu" "$wall" "$((peak_rss / 1024))" "$drops" >>"$OUT/results.tsv"
	log "$name: flooders sent $sent ($flood_rate/s), answered 403 x$answered403 401 x$answered401, dropped $dropped, blocked $blocked; calls $completed/$calls ($pct%); edge CPU $cpu% over ${wall}s, peak RSS $((peak_rss / 1024)) MB; kernel drops $drops"
}

: >"$OUT/results.tsv"
run_step baseline 0
run_step flood 1

{
	echo "## callsign flood benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "- $("$BIN" version 2>/dev/null); $("$SIPP" -v 2>&1 | grep -m1 -o 'SIPp v[^ ]*')"
	echo "- carrier: $((RATE * DURATION)) calls at $RATE/s, hold ${HOLD} s; flooders: $FLOODERS, each aiming at $FLOOD_RATE requests/s"
	echo
	echo "| step | flood requests sent | flood rate (/s) | answered 403 | answered 401 | dropped (rate_limit) | sources blocked | calls placed | calls completed | completed % | edge CPU (% of a core) | peak RSS (MB) | kernel drops, edge SIP socket |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' '{ printf "| %s | %d | %s | %d | %d | %d | %d | %d | %d | %s | %s | %d | %d |\n", $1, $2, $3, $4, $5, $6, $7, $8, $10, $11, $12, $14, $15 }' "$OUT/results.tsv"
} | tee "$OUT/report.md"
echo
echo "per step: $OUT/{baseline,flood}/"
