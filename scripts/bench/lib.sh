# Shared by scripts/bench-load.sh and scripts/bench-flood.sh: the processes
# a run starts (each remembered, and killed when the script exits) and the
# measurements both read off /proc, /metrics and sipp's statistics.
# Sourced, not run; the script sets EDGE_HTTP before it reads /metrics.

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

forget() { # pid: drop a pid that has ended
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

stop() { # pid [seconds] [signal]: the signal (TERM), then KILL after the grace time
	local pid=$1 grace=${2:-10} sig=${3:-TERM} i
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
cpu_ticks() { # pid: utime+stime of a process, in clock ticks
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
metrics_to() { curl -s --max-time 3 "http://127.0.0.1:$EDGE_HTTP/metrics" >"$1" 2>/dev/null || : >"$1"; }
metric() { # file name [label]: the sum of a metric over its label sets (matching label, if given)
	awk -v m="$2" -v l="${3:-}" '($1 == m || index($1, m "{") == 1) && (l == "" || index($1, l)) { s += $NF } END { printf "%d\n", s }' "$1"
}
udp_drops() { # port: receive-queue drops of the UDP sockets bound to it (/proc/net/udp)
	awk -v p="$(printf '%04X' "$1")" 'NR > 1 { split($2, a, ":"); if (a[2] == p) d += $NF } END { print d + 0 }' /proc/net/udp
}
stat_col() { # file column: a number of the last row of a sipp -trace_stat CSV (';'), 0 if none
	awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } c { v = $c } END { print v + 0 }' "$1" 2>/dev/null || echo 0
}
