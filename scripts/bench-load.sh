#!/usr/bin/env bash
# bench-load.sh: sipp load runs against callsign (carrier sipp -> edge ->
# agent sipp), at rising call rates, written up in docs/benchmarks.md.
#
# For each mode (a hold time) it steps through rising call rates. Every step
# starts a fresh edge (fresh storage dir, its own config with enough agents),
# one sipp as every agent's phone (UAS) and one sipp as the carrier (UAC)
# placing rate x CALLS_SECONDS calls at -r rate. A step passes when at least
# 99.9% of the calls it meant to place completed: the carrier's sipp counts
# them successful AND the edge's log shows them clean (answered by the first
# agent rung, ended by the caller's BYE); the first step under that ends the
# mode. It prints a markdown table per mode and the highest passing rate.
#
#   hold 0 s:  INVITE, 200, ACK, BYE at once; no media.
#   hold > 0:  the carrier streams raw A-law (the payloads of
#              /usr/share/sip-tester/g711a.pcap) with sipp's rtp_stream,
#              looping, PCMA 20 ms (50 packets/s), from ACK to BYE; the
#              agent's sipp echoes every packet back (-rtp_echo), so the
#              edge relays 50 packets/s in each direction of every call.
#              AUDIO=0 leaves the audio out (no stream, no echo).
#
# Flows (FLOW):
#   queue:     the number's flow is [queue: bench]; the edge answers the
#              caller when the agent does.
#   ivr:       [play: prompts/goodbye.wav, queue: bench]: the edge answers
#              the caller itself (200 OK), plays it the built-in prompt
#              (12,295 samples, 1.54 s: 77 RTP packets of 20 ms, the last
#              padded), then rings an agent and bridges. Needs a hold of at
#              least 2 s (the caller must still be there when the prompt
#              ends and the agent answers), so hold 0 is refused. With
#              audio, the edge relays for the hold less the prompt,
#              (hold - 1.54) x 100 packets a call. The edge's
#              callsign_prompt_packets_sent_total is read against 77 a call.
#   record:    [queue: bench] with record: announce: the edge answers the
#              caller, plays it recording.consent.announce_prompt (set to
#              the same prompts/goodbye.wav, 1.54 s), rings an agent and
#              records the bridged call to storage.dir/recordings (stereo
#              8 kHz 16-bit PCM, 32,000 bytes/s, plus a .json sidecar).
#              Calls are counted as for ivr (same hold rule). Per step it
#              also reads the recordings: completed / failed (/metrics),
#              the bytes under storage.dir/recordings (du -sb) and of the
#              .wav files against the expected 32,000 x talk + 44 a file
#              (talk = hold - 1.54 s - the agent's ring time, from the
#              edge's log, per call), the peak of
#              callsign_recording_buffered_bytes and recordings_active and
#              the writer_behind / late_samples counters in the 2-s
#              samples, the disk's writes, flushes and the machine's
#              iowait, and checks every .wav (scripts/bench/wavcheck:
#              header sizes against the file's length, sha256 and duration
#              against the sidecar, sound on both channels) and `file` on
#              three of them. A step needs about 32,000 x (hold - 1.54) x
#              calls bytes of disk; it is refused if the disk has less
#              than that plus 1 GB free.
#
# Environment (all optional; defaults are the full run, ~15-25 minutes):
#   FLOW           queue, ivr or record (above)             queue
#   HOLD           modes, hold times in seconds             "0 30" (queue), "5" (ivr, record)
#   AUDIO          0: no audio in the modes with a hold     1
#   RATES          call rates (calls/s) for every mode      per mode, below
#   RATES_0        rates of the 0 s mode                    "200 400 500 600 700 800 1000 1200 1500"
#   RATES_HOLD     rates of the modes with a hold           "20 30 40 50 60 80 100 150"
#   CALLS_SECONDS  calls per step = rate x this             20 (hold 0), 45 (hold > 0)
#   AGENTS         agents in the config                     ceil(rate x (hold + 3) x 1.25), at least 500
#                  (ivr, record: an agent's part of a call is 1.54 s shorter than the hold, so the same suffices)
#   RTP_PORTS      the edge's media.rtp_ports               10000-65000
#   PORT_BASE      SIP/HTTP/NATS/sipp ports are PORT_BASE + 60/80/422/70/90/100/200   7000
#   OUT            where results go                         a new directory under ${TMPDIR:-/tmp}
#   KEEP_GOING=1   do not stop a mode at its first failing step
#   KEEP_RECORDINGS=0  (record) delete a step's recordings once read and checked   1 (keep them)
#   BIN, SIPP      the edge binary and sipp                 bin/callsign, sipp
#
# Quick run:  RATES="200 500" HOLD=0 CALLS_SECONDS=5 scripts/bench-load.sh
# IVR:        FLOW=ivr HOLD=5 RATES_HOLD="50 100 200" CALLS_SECONDS=20 scripts/bench-load.sh
# Recording:  FLOW=record HOLD=5 RATES_HOLD="50 100 200" CALLS_SECONDS=20 scripts/bench-load.sh
#
# Everything binds 127.0.0.1. Every wait is bounded and every process this
# script starts is killed when it exits.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/bin/callsign}
SIPP=${SIPP:-sipp}
FLOW=${FLOW:-queue}
case $FLOW in
ivr | record) HOLD=${HOLD:-5} ;;
*) HOLD=${HOLD:-"0 30"} ;;
esac
AUDIO=${AUDIO:-1}
RATES=${RATES:-}
RATES_0=${RATES_0:-"200 400 500 600 700 800 1000 1200 1500"}
RATES_HOLD=${RATES_HOLD:-"20 30 40 50 60 80 100 150"}
CALLS_SECONDS=${CALLS_SECONDS:-}
AGENTS=${AGENTS:-}
RTP_PORTS=${RTP_PORTS:-10000-65000}
PORT_BASE=${PORT_BASE:-7000}
KEEP_GOING=${KEEP_GOING:-0}
KEEP_RECORDINGS=${KEEP_RECORDINGS:-1}
PCAP=${PCAP:-/usr/share/sip-tester/g711a.pcap}

EDGE_SIP=$((PORT_BASE + 60))
EDGE_HTTP=$((PORT_BASE + 80))
EDGE_NATS=$((PORT_BASE + 422))
UAC_SIP=$((PORT_BASE + 70))
UAS_SIP=$((PORT_BASE + 90))
UAC_MEDIA=$((PORT_BASE + 100))
UAS_MEDIA=$((PORT_BASE + 200))
NUMBER=15550100001
PASS_PERMILLE=999 # 99.9%
# FLOW=ivr: the prompt played before the queue, built into the binary
# (prompts/goodbye.wav: 12,295 samples at 8 kHz, 1.54 s, sent as 77
# packets of 20 ms, the last one padded with silence); FLOW=record plays
# the same as its recording announcement.
PROMPT=prompts/goodbye.wav
PROMPT_SECONDS=1.54
PROMPT_PACKETS=77
# FLOW=record: a recording's bytes a second (stereo, 8 kHz, 16-bit) and
# its header.
REC_BYTES_PER_S=32000
WAV_HEADER=44

die() { echo "bench-load: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

case $FLOW in
queue | ivr | record) ;;
*) die "FLOW=$FLOW: queue, ivr or record" ;;
esac
case $KEEP_RECORDINGS in
0 | 1) ;;
*) die "KEEP_RECORDINGS=$KEEP_RECORDINGS: 1 (keep) or 0 (delete each step's recordings once read)" ;;
esac
case $AUDIO in
0 | 1) ;;
*) die "AUDIO=$AUDIO: 1 (audio in the modes with a hold) or 0 (none)" ;;
esac
for h in $HOLD; do
	[[ $h =~ ^[0-9]+$ ]] || die "HOLD: $h is not a whole number of seconds"
	if [ "$FLOW" != queue ] && [ "$h" -lt 2 ]; then
		die "FLOW=$FLOW needs every HOLD of at least 2 s, not $h: the edge answers the caller, plays it the ${PROMPT_SECONDS} s $([ "$FLOW" = record ] && echo "recording announcement" || echo prompt) and only then rings the agent, so a caller that hangs up sooner ends every call in the prompt, never answered by an agent (try HOLD=5)"
	fi
done
[ -x "$BIN" ] || die "$BIN not found: run make build first"
command -v "$SIPP" >/dev/null || die "sipp not found (Debian package sip-tester; make test-deps installs it)"
command -v curl >/dev/null || die "curl not found"
[ -r "$PCAP" ] || die "$PCAP not found (Debian package sip-tester)"

OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/callsign-bench-load.XXXXXX")}
mkdir -p "$OUT" || die "cannot create $OUT"
HZ=$(getconf CLK_TCK)
# The block device OUT is on (major:minor, as in /proc/diskstats): where a
# FLOW=record step's recordings go.
OUT_DEV=$(stat -c '%Hd:%Ld' "$OUT" 2>/dev/null || echo -)
# ... its name there, empty when it has none (tmpfs): no disk figures then.
OUT_DISK=$(awk -v dev="$OUT_DEV" '$1 ":" $2 == dev { print $3; exit }' /proc/diskstats)

# The edge holds one socket per call leg: raise the descriptor limit as far
# as this shell may.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

. "$ROOT/scripts/bench/lib.sh"

# ---- measurements of this benchmark ----
machine_ticks() { # busy and total jiffies of the whole machine
	awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8; total = busy + $5 + $6; print busy, total }' /proc/stat
}
machine_iowait() { awk '/^cpu / { print $6 }' /proc/stat; }
# disk_stats: sectors written, ms doing I/O, flush requests and ms flushing
# of the device OUT is on ("0 0 0 0" if /proc/diskstats does not list it).
disk_stats() {
	awk -v dev="$OUT_DEV" '$1 ":" $2 == dev { print $10, $13, ($19 == "" ? 0 : $19), ($20 == "" ? 0 : $20); f = 1; exit } END { if (!f) print 0, 0, 0, 0 }' /proc/diskstats
}
write_bytes() { awk '/^write_bytes:/ { print $2 }' "/proc/$1/io" 2>/dev/null || echo 0; }
edge_udp_drops() { # pid port: drops summed over the UDP sockets of a process, but the one bound to port
	find "/proc/$1/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | grep -o 'socket:\[[0-9]*\]' | tr -dc '0-9\n' |
		awk -v p="$(printf '%04X' "$2")" 'NR == FNR { ino[$1] = 1; next } FNR > 1 && ($10 in ino) { split($2, a, ":"); if (a[2] != p) d += $NF } END { print d + 0 }' - /proc/net/udp
}
# edge_calls LOG: calls ended; of them, clean ones (answered by the first
# agent rung, ended by the caller's BYE); calls the edge hung up for lack
# of media; calls with an agent attempt that was not answered.
edge_calls() {
	awk '
		/"message":"agent attempt"/ && !/"result":"answered"/ { match($0, /"call_id":"[^"]*"/); bad[substr($0, RSTART, RLENGTH)] = 1 }
		/"message":"no media, hanging up"/ { nomedia++ }
		/"message":"call ended"/ {
			match($0, /"call_id":"[^"]*"/); ended++
			if ($0 ~ /"outcome":"answered"/ && $0 ~ /"hangup_by":"caller"/) ok[substr($0, RSTART, RLENGTH)] = 1
		}
		END { n = 0; for (id in ok) if (!(id in bad)) n++; nb = 0; for (id in bad) nb++; print ended + 0, n, nomedia + 0, nb }' "$1"
}
kv_get() { # file key: the value of key=value in a line of words
	tr ' ' '\n' <"$1" 2>/dev/null | awk -F= -v k="$2" '$1 == k { v = $2 } END { print (v == "" ? "-" : v) }'
}

# ---- one step ----
gen_config() { # dir agents
	local dir=$1 n=$2 i
	{
		cat <<-EOF
			# generated by scripts/bench-load.sh
			sip:
			  listen: [udp://127.0.0.1:$EDGE_SIP]
			  advertise: 127.0.0.1
			media:
			  address: 127.0.0.1
			  rtp_ports: $RTP_PORTS
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
			  "+$NUMBER": {source: bench, medium: load, flow: bench}
			flows:
			  bench:
		EOF
		if [ "$FLOW" = record ]; then echo "    record: announce"; fi
		echo "    steps:"
		if [ "$FLOW" = ivr ]; then echo "      - play: $PROMPT"; fi
		cat <<-EOF
			      - queue: bench
			queues:
			  bench:
			    strategy: round-robin
			    ring_timeout: 20s
			    agents:
		EOF
		for ((i = 1; i <= n; i++)); do printf '      - a%05d\n' "$i"; done
		echo "agents:"
		for ((i = 1; i <= n; i++)); do
			printf '  a%05d: {sip: {contact: "sip:a%05d@127.0.0.1:%d"}}\n' "$i" "$i" "$UAS_SIP"
		done
		if [ "$FLOW" = record ]; then
			cat <<-EOF
				recording:
				  consent:
				    announce_prompt: $PROMPT
			EOF
		fi
	} >"$dir/callsign.yaml"
}

# run_step hold rate: runs one step, appends its row to $OUT/results.tsv
# and returns 0 when it passed.
run_step() {
	local hold=$1 rate=$2
	local cs=${CALLS_SECONDS:-$([ "$hold" -eq 0 ] && echo 20 || echo 45)}
	local calls=$((rate * cs))
	local agents=${AGENTS:-$(awk -v r="$rate" -v h="$hold" 'BEGIN { a = r * (h + 3) * 1.25; a = (a == int(a)) ? a : int(a) + 1; print (a < 500 ? 500 : a) }')}
	local dir="$OUT/hold${hold}-rate${rate}"
	[ "$FLOW" = ivr ] && dir="$OUT/ivr-hold${hold}-rate${rate}"
	[ "$FLOW" = record ] && dir="$OUT/rec-hold${hold}-rate${rate}"
	mkdir -p "$dir"
	if [ "$FLOW" = record ]; then
		# The recordings need about 32,000 bytes a second of talk: refuse a
		# step the disk cannot hold with 1 GB to spare.
		local avail need
		avail=$(df -B1 --output=avail "$dir" | tail -1)
		need=$(awk -v n="$calls" -v h="$hold" -v p="$PROMPT_SECONDS" -v b="$REC_BYTES_PER_S" 'BEGIN { printf "%.0f", n * (h - p) * b + 1e9 }')
		[ "${avail:-0}" -ge "$need" ] || die "FLOW=record: ${rate} calls/s needs about $((need / 1000000)) MB free under $dir (its recordings and 1 GB to spare), $((${avail:-0} / 1000000)) MB are (KEEP_RECORDINGS=0 deletes each step's recordings once read)"
	fi
	gen_config "$dir" "$agents"
	"$BIN" check -c "$dir/callsign.yaml" >"$dir/check.out" 2>&1 || { cat "$dir/check.out" >&2; die "generated configuration refused"; }

	log "$([ "$FLOW" = ivr ] && echo "ivr ($PROMPT, then the queue), ")$([ "$FLOW" = record ] && echo "record (announcement $PROMPT, then the queue, recorded), ")hold ${hold}s$([ "$hold" -gt 0 ] && [ "$AUDIO" = 0 ] && echo ", no audio"), ${rate} calls/s: ${calls} calls, ${agents} agents ($dir)"
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
	sleep 2
	local rss_idle
	rss_idle=$(rss_kb "$edge")

	# The agents' phones: one UAS for all; -l and -m far above what a step needs.
	local audio_uas=() sf_uac="$ROOT/scripts/bench/carrier.xml"
	if [ "$hold" -gt 0 ] && [ "$AUDIO" = 1 ]; then
		audio_uas=(-rtp_echo)
		sf_uac="$ROOT/scripts/bench/carrier-audio.xml"
		cp "$OUT/g711a.al" "$dir/g711a.al"
	fi
	local limit=$((rate * (hold + 30) + 1000))
	[ "$limit" -lt $((NOFILE - 1000)) ] || limit=$((NOFILE - 1000))
	(cd "$dir" && exec "$SIPP" -sf "$ROOT/scripts/bench/agent.xml" -i 127.0.0.1 -p "$UAS_SIP" -mp "$UAS_MEDIA" \
		"${audio_uas[@]}" -l $((limit * 2 < NOFILE - 1000 ? limit * 2 : NOFILE - 1000)) -nostdin -trace_stat -stf "$dir/uas-stat.csv" -fd 1 \
		-trace_screen -screen_file "$dir/uas-screen.log" -trace_err -error_file "$dir/uas-errors.log" \
		>"$dir/uas.out" 2>&1) &
	local uas=$!
	PIDS+=("$uas")
	sleep 1
	kill -0 "$uas" 2>/dev/null || { tail -5 "$dir/uas.out" >&2; die "the agents' sipp did not start"; }

	# The carrier: rate x cs calls at -r rate; every call and the run bounded.
	local bound=$((calls / rate + hold + 60))
	local e0 m0 t0 a0 u0
	e0=$(cpu_ticks "$edge")
	a0=$(cpu_ticks "$uas")
	m0=$(machine_ticks)
	t0=$(date +%s.%N)
	(cd "$dir" && exec "$SIPP" "127.0.0.1:$EDGE_SIP" -sf "$sf_uac" -s "$NUMBER" -i 127.0.0.1 -p "$UAC_SIP" -mp "$UAC_MEDIA" \
		-r "$rate" -m "$calls" -d $((hold * 1000)) -l "$limit" -recv_timeout 32000 -timeout "${bound}s" \
		-nostdin -trace_stat -stf "$dir/uac-stat.csv" -fd 1 -trace_screen -screen_file "$dir/uac-screen.log" \
		-trace_err -error_file "$dir/uac-errors.log" >"$dir/uac.out" 2>&1) &
	local uac=$!
	PIDS+=("$uac")
	u0=$(cpu_ticks "$uac")

	# Samples every 2 s while the carrier runs: elapsed, edge RSS (kB),
	# active calls, RTP ports in use, edge CPU ticks, receive-queue drops
	# summed over the edge's open RTP sockets (hold > 0), the carrier's and
	# the agents' sipp CPU ticks, the machine's busy and total ticks (all
	# cores), the edge's prompt packets sent so far (counted when a
	# playback ends), receive-queue drops of the carrier's media socket
	# (its sipp never reads RTP, so once its queue is full every packet
	# reaching it is dropped; the socket goes when the carrier exits);
	# then, for the recordings (0 where the edge has none): recordings
	# active, callsign_recording_buffered_bytes, writer_behind_total,
	# late_samples_total, recordings completed; the machine's iowait ticks;
	# the disk OUT is on (/proc/diskstats): sectors written, ms doing I/O,
	# flush requests, ms flushing; the bytes the edge caused to be written
	# to storage (/proc/PID/io write_bytes).
	echo "elapsed_s rss_kb active_calls rtp_ports_in_use edge_cpu_ticks edge_rtp_socket_drops carrier_cpu_ticks agent_cpu_ticks machine_busy_ticks machine_total_ticks prompt_packets_sent carrier_media_drops recordings_active recording_buffered_bytes recording_writer_behind_total recording_late_samples_total recordings_completed machine_iowait_ticks disk_sectors_written disk_io_ms disk_flushes disk_flush_ms edge_write_bytes" >"$dir/samples.txt"
	local end=$(($(date +%s) + bound + 30)) uac_cpu=$u0 now ertp c
	while kill -0 "$uac" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
		metrics_to "$dir/m.txt"
		now=$(date +%s.%N)
		# (0 once the carrier has exited: keep the last reading)
		c=$(cpu_ticks "$uac")
		[ "$c" -gt "$uac_cpu" ] && uac_cpu=$c
		ertp=0
		[ "$hold" -gt 0 ] && ertp=$(edge_udp_drops "$edge" "$EDGE_SIP")
		echo "$(awk -v a="$now" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') $(rss_kb "$edge") $(metric "$dir/m.txt" callsign_active_calls) $(metric "$dir/m.txt" callsign_rtp_ports_in_use) $(cpu_ticks "$edge") ${ertp:-0} $uac_cpu $(cpu_ticks "$uas") $(machine_ticks) $(metric "$dir/m.txt" callsign_prompt_packets_sent_total) $(udp_drops "$UAC_MEDIA") $(metric "$dir/m.txt" callsign_recordings_active) $(metric "$dir/m.txt" callsign_recording_buffered_bytes) $(metric "$dir/m.txt" callsign_recording_writer_behind_total) $(metric "$dir/m.txt" callsign_recording_late_samples_total) $(awk '/^callsign_recordings_total/ && /result="completed"/ { s += $NF } END { print s + 0 }' "$dir/m.txt") $(machine_iowait) $(disk_stats) $(write_bytes "$edge")" >>"$dir/samples.txt"
		for ((i = 0; i < 8; i++)); do kill -0 "$uac" 2>/dev/null || break; sleep 0.25; done
	done
	local timed_out=0
	kill -0 "$uac" 2>/dev/null && timed_out=1
	local t1 e1 m1 a1
	t1=$(date +%s.%N)
	e1=$(cpu_ticks "$edge")
	a1=$(cpu_ticks "$uas")
	m1=$(machine_ticks)
	[ "$timed_out" = 1 ] && { log "the carrier's sipp ran past ${bound}s: killed"; stop "$uac" 5; }
	wait "$uac" 2>/dev/null
	local uac_rc=$?
	forget "$uac"

	# Let the edge settle (transactions, events), then read it once more;
	# FLOW=record: wait (30 s at most) for the last recordings to be sealed.
	sleep 3
	metrics_to "$dir/metrics-end.txt"
	if [ "$FLOW" = record ]; then
		for ((i = 0; i < 60; i++)); do
			[ "$(metric "$dir/metrics-end.txt" callsign_recordings_active)" -eq 0 ] && break
			sleep 0.5
			metrics_to "$dir/metrics-end.txt"
		done
	fi
	local drops
	drops="$(udp_drops "$EDGE_SIP")/$(udp_drops "$UAC_SIP")/$(udp_drops "$UAS_SIP")"
	# RTP receive-queue drops: the most seen at once on the edge's open
	# RTP sockets (closed sockets take their count with them), the
	# carrier's media socket at its last sample (it closes when the
	# carrier's sipp exits) and the agents' at the end.
	local rtp_drops
	rtp_drops="$(awk 'NR > 1 && $6 + 0 > m { m = $6 + 0 } END { print m + 0 }' "$dir/samples.txt")/$(awk -v e="$(udp_drops "$UAC_MEDIA")" 'NR > 1 && $12 + 0 > m { m = $12 + 0 } END { print (e > m ? e : m) + 0 }' "$dir/samples.txt")/$(udp_drops "$UAS_MEDIA")"
	local rss_end
	rss_end=$(rss_kb "$edge")
	stop "$uas" 5
	stop "$edge" 10

	# ---- the row ----
	local st="$dir/uac-stat.csv" created ok failed
	created=$(stat_col "$st" "TotalCallCreated")
	ok=$(stat_col "$st" "SuccessfulCall(C)")
	failed=$(stat_col "$st" "FailedCall(C)")
	created=${created:-0} ok=${ok:-0} failed=${failed:-0}
	# The achieved rate: calls created over the time sipp took to create
	# them. The stat file has a row a second (whole seconds); the moment the
	# last call was created is interpolated within the second it fell in,
	# at the creation rate of the second before.
	local secs achieved
	secs=$(awk -F';' -v final="$created" '
		function sec(t,   a) { split(t, a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
		NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "TotalCallCreated") c = i; if ($i == "ElapsedTime(C)") e = i }; next }
		!c || !e { next }
		$c + 0 >= final && final > 0 {
			if (n >= 2 && pc - ppc > 0 && sec($e) > pt) { printf "%.3f\n", pt + (final - pc) / ((pc - ppc) / (pt - ppt)); exit }
			printf "%.3f\n", sec($e); exit
		}
		{ ppc = pc; ppt = pt; pc = $c + 0; pt = sec($e); n++ }' "$st" 2>/dev/null)
	secs=${secs:-0}
	achieved=$(awk -v n="$created" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "-" }')
	# The reasons of failed calls, from the non-zero Failed* columns.
	local reasons
	reasons=$(awk -F';' '
		NR == 1 { for (i = 1; i <= NF; i++) h[i] = $i; next }
		{ for (i in h) v[i] = $i }
		END { for (i in h) if (h[i] ~ /^Failed.*\(C\)$/ && h[i] != "FailedCall(C)" && v[i] + 0 > 0) { r = h[i]; sub(/^Failed/, "", r); sub(/\(C\)$/, "", r); s = s (s ? "," : "") r "=" v[i] } print s }' "$st" 2>/dev/null)
	# A call completed when the carrier's sipp completed it AND the edge
	# saw it clean: answered by the first agent it rang, ended by the
	# caller's BYE. sipp alone cannot tell: a retransmitted 200 OK of the
	# INVITE satisfies its wait for the 200 of the BYE, and a caller kept
	# waiting 20 s while the edge rings a second agent still succeeds.
	local ended clean nomedia retried completed pct pass
	read -r ended clean nomedia retried < <(edge_calls "$dir/edge.log")
	completed=$((ok < clean ? ok : clean))
	pct=$(awk -v ok="$completed" -v n="$calls" 'BEGIN { printf "%.2f", 100 * ok / n }')
	pass=$(awk -v ok="$completed" -v n="$calls" -v p="$PASS_PERMILLE" 'BEGIN { print (ok * 1000 >= n * p) ? 1 : 0 }')
	local uas_ok uas_failed
	uas_ok=$(stat_col "$dir/uas-stat.csv" "SuccessfulCall(C)")
	uas_failed=$(stat_col "$dir/uas-stat.csv" "FailedCall(C)")
	local wall edge_cpu uas_cpu uac_cpu_pct mach
	wall=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
	edge_cpu=$(awk -v d=$((e1 - e0)) -v hz="$HZ" -v w="$wall" 'BEGIN { printf "%.0f", 100 * d / hz / w }')
	uas_cpu=$(awk -v d=$((a1 - a0)) -v hz="$HZ" -v w="$wall" 'BEGIN { printf "%.0f", 100 * d / hz / w }')
	uac_cpu_pct=$(awk -v d=$((uac_cpu - u0)) -v hz="$HZ" -v w="$wall" 'BEGIN { printf "%.0f", 100 * d / hz / w }')
	mach=$(awk -v nc="$(nproc)" -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " "); if (y[2] > x[2]) printf "%.0f", 100 * nc * (y[1] - x[1]) / (y[2] - x[2]); else print "-" }')
	# Memory at steady state: the sample with the most active calls.
	local peak_active peak_rss per_call max_rss
	read -r peak_active peak_rss < <(awk 'NR > 1 && $3 + 0 >= best { best = $3 + 0; rss = $2 } END { print best + 0, rss + 0 }' "$dir/samples.txt")
	max_rss=$(awk 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' "$dir/samples.txt")
	per_call=$(awk -v a="$peak_active" -v r="$peak_rss" -v i="$rss_idle" 'BEGIN { if (a > 0) printf "%.1f", (r - i) / a; else print "-" }')
	local answered missed relayed dropped r503
	answered=$(awk '/^callsign_calls_total/ && /outcome="answered"/ { s += $NF } END { print s + 0 }' "$dir/metrics-end.txt")
	missed=$(awk '/^callsign_calls_total/ && /outcome="missed"/ { s += $NF } END { print s + 0 }' "$dir/metrics-end.txt")
	relayed=$(metric "$dir/metrics-end.txt" callsign_rtp_packets_relayed_total)
	dropped=$(metric "$dir/metrics-end.txt" callsign_rtp_packets_dropped_total)
	r503=$(awk '/^callsign_sip_responses_total/ && /code="503"/ { s += $NF } END { print s + 0 }' "$dir/metrics-end.txt")

	# Audio: the carrier streams 50 packets/s for the hold and the agent
	# echoes them, so a completed call should have hold x 100 packets relayed;
	# with FLOW=ivr or record the bridge starts after the prompt (or the
	# announcement): (hold - 1.54) x 100.
	local media prompt_s=0
	[ "$FLOW" != queue ] && prompt_s=$PROMPT_SECONDS
	media=$(awk -v r="$relayed" -v ok="$ok" -v h="$hold" -v p="$prompt_s" -v a="$AUDIO" 'BEGIN { if (a == 1 && h > p && ok > 0) printf "%.2f", 100 * r / (ok * (h - p) * 100); else print "-" }')
	# FLOW=ivr or record: calls the edge answered for the prompt or the
	# announcement (its log), and the prompt packets it sent
	# (callsign_prompt_packets_sent_total, announcements included; "-" if
	# this edge has no such counter) against 77 for each of those calls.
	local ivr_answered=0 prompt_sent=- prompt_pct=-
	if [ "$FLOW" != queue ]; then
		ivr_answered=$(awk 'index($0, "\"message\":\"caller answered for the flow") { n++ } END { print n + 0 }' "$dir/edge.log")
		if grep -q '^callsign_prompt_packets_sent_total' "$dir/metrics-end.txt"; then
			prompt_sent=$(metric "$dir/metrics-end.txt" callsign_prompt_packets_sent_total)
			prompt_pct=$(awk -v s="$prompt_sent" -v n="$ivr_answered" -v pp="$PROMPT_PACKETS" 'BEGIN { if (n > 0) printf "%.2f", 100 * s / (n * pp); else print "-" }')
		fi
	fi
	# CPU at steady state: between the 2-s samples taken from the moment
	# the first calls end (hold s; 2 s with no hold) to the moment the last
	# call is placed (calls / rate s), when as many calls are up as the
	# step has at once (per cent of one core; machine: all cores).
	local ss_edge ss_uac ss_uas ss_mach
	read -r ss_edge ss_uac ss_uas ss_mach < <(awk -v lo=$((hold > 2 ? hold : 2)) -v hi=$((calls / rate)) -v hz="$HZ" -v nc="$(nproc)" '
		NR == 1 { next }
		{ ok = ($1 + 0 >= lo && $1 + 0 <= hi) }
		ok && pok && $1 > pt && $5 >= pe && $7 >= pu && $8 >= pa && $10 > pm {
			dt += $1 - pt; de += $5 - pe; du += $7 - pu; da += $8 - pa; db += $9 - pb; dm += $10 - pm
		}
		{ pok = ok; pt = $1; pe = $5; pu = $7; pa = $8; pb = $9; pm = $10 }
		END {
			if (dt > 0 && dm > 0) printf "%.0f %.0f %.0f %.0f\n", 100 * de / hz / dt, 100 * du / hz / dt, 100 * da / hz / dt, 100 * nc * db / dm
			else print "- - - -"
		}' "$dir/samples.txt")
	# FLOW=record: the recordings.
	local rec_started=- rec_completed=- rec_failed=- rec_active_end=- consent_announced=- wav_files=- part_files=-
	local du_bytes=- wav_bytes=- model_bytes=- edge_bytes=- json_bytes=- peak_rec_active=- peak_buffered=- behind=- late=-
	local disk_mbps=- disk_util=- flush_rate=- iowait=- edge_wmbps=- header_ok=- sha_ok=- duration_ok=- path_ok=-
	local sound_caller=- sound_agent=- with_caller=- with_agent=- file_ok=- ring_median=- ring_p99=- talk_mean=- flush_ms=-
	if [ "$FLOW" = record ]; then
		rec_started=$(grep -c '"message":"recording started"' "$dir/edge.log")
		consent_announced=$(grep '"message":"recording consent"' "$dir/edge.log" | grep -c '"consent":"announced"')
		rec_completed=$(awk '/^callsign_recordings_total/ && /result="completed"/ { s += $NF } END { print s + 0 }' "$dir/metrics-end.txt")
		rec_failed=$(awk '/^callsign_recordings_total/ && /result="failed"/ { s += $NF } END { print s + 0 }' "$dir/metrics-end.txt")
		rec_active_end=$(metric "$dir/metrics-end.txt" callsign_recordings_active)
		behind=$(metric "$dir/metrics-end.txt" callsign_recording_writer_behind_total)
		late=$(metric "$dir/metrics-end.txt" callsign_recording_late_samples_total)
		read -r peak_rec_active peak_buffered < <(awk 'NR > 1 { if ($13 + 0 > a) a = $13 + 0; if ($14 + 0 > b) b = $14 + 0 } END { print a + 0, b + 0 }' "$dir/samples.txt")
		# Expected bytes: for each recording the edge completed (its
		# "recording completed" line), 32,000 x talk + 44, with talk = hold
		# - the announcement - the ring time of the agent attempt answered
		# in that call ("agent attempt", result answered): what is left of
		# the caller's hold, counted from its ACK, once the announcement
		# has played and the agent has answered. Also the bytes the edge's
		# own durations of those recordings make (32 x ms + 44), and the
		# median and p99 ring times and the mean recorded talk.
		read -r model_bytes edge_bytes ring_median ring_p99 talk_mean < <(awk -v h="$hold" -v p="$PROMPT_SECONDS" -v b="$REC_BYTES_PER_S" -v hd="$WAV_HEADER" '
			function num(k,   v) { if (!match($0, "\"" k "\":[-0-9.e+]+")) return -1; v = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return v + 0 }
			function cid() { match($0, /"call_id":"[^"]*"/); return substr($0, RSTART, RLENGTH) }
			/"message":"agent attempt"/ && /"result":"answered"/ { ring[cid()] = num("ring") }
			/"message":"recording completed"/ { dur[cid()] = num("duration") }
			END {
				n = 0
				for (id in dur) {
					r = (id in ring) ? ring[id] / 1000 : 0
					t = h - p - r; if (t < 0) t = 0
					model += b * t + hd; edge += b * dur[id] / 1000 + hd; talk += dur[id] / 1000
					if (id in ring) rs[++n] = ring[id]
				}
				if (n > 0) {
					for (i = 2; i <= n; i++) { v = rs[i]; for (j = i - 1; j >= 1 && rs[j] > v; j--) rs[j + 1] = rs[j]; rs[j + 1] = v }
					med = rs[int((n + 1) / 2)]; q = int(0.99 * n); if (q < 1) q = 1; p99 = rs[q]
					printf "%.0f %.0f %.0f %.0f %.2f\n", model, edge, med, p99, talk / length(dur)
				} else print "0 0 - - -"
			}' "$dir/edge.log")
		# The disk and the machine at steady state, over the same samples
		# as the CPU: MB/s written to the device, its busy time (%), its
		# flush requests a second, the machine's iowait (% of one core, as
		# the machine's CPU), the edge's own writes (MB/s) and the device's
		# mean time per flush request (ms).
		read -r disk_mbps disk_util flush_rate iowait edge_wmbps flush_ms < <(awk -v lo=$((hold > 2 ? hold : 2)) -v hi=$((calls / rate)) -v nc="$(nproc)" '
			NR == 1 { next }
			{ ok = ($1 + 0 >= lo && $1 + 0 <= hi) }
			ok && pok && $1 > pt && $10 > pm { dt += $1 - pt; dm += $10 - pm; dw += $18 - pw; ds += $19 - ps; di += $20 - pi; df += $21 - pf; dfm += $22 - pfm; de += $23 - pe }
			{ pok = ok; pt = $1; pm = $10; pw = $18; ps = $19; pi = $20; pf = $21; pfm = $22; pe = $23 }
			END {
				if (dt > 0 && dm > 0) printf "%.1f %.0f %.0f %.0f %.1f %s\n", ds * 512 / dt / 1e6, 100 * di / 1000 / dt, df / dt, 100 * nc * dw / dm, de / dt / 1e6, (df > 0 ? sprintf("%.2f", dfm / df) : "-")
				else print "- - - - - -"
			}' "$dir/samples.txt")
		[ -n "$OUT_DISK" ] || disk_mbps=- disk_util=- flush_rate=- flush_ms=-
		local recdir="$dir/storage/recordings"
		if [ -d "$recdir" ]; then
			du_bytes=$(du -sb "$recdir" | cut -f1)
			# Every .wav: header and sizes, sidecar, sound on both channels.
			"$OUT/wavcheck" "$recdir" >"$dir/wavcheck.out" 2>"$dir/wavcheck.err"
			wav_files=$(kv_get "$dir/wavcheck.out" files) part_files=$(kv_get "$dir/wavcheck.out" part_files) wav_bytes=$(kv_get "$dir/wavcheck.out" wav_bytes) json_bytes=$(kv_get "$dir/wavcheck.out" json_bytes)
			header_ok=$(kv_get "$dir/wavcheck.out" header_ok) sha_ok=$(kv_get "$dir/wavcheck.out" sha256_ok) duration_ok=$(kv_get "$dir/wavcheck.out" duration_ok) path_ok=$(kv_get "$dir/wavcheck.out" path_ok)
			sound_caller=$(kv_get "$dir/wavcheck.out" sound_caller_pct) sound_agent=$(kv_get "$dir/wavcheck.out" sound_agent_pct)
			with_caller=$(kv_get "$dir/wavcheck.out" with_sound_caller) with_agent=$(kv_get "$dir/wavcheck.out" with_sound_agent)
			# file(1) on the first, a middle and the last of them.
			local wavs=() f n=0
			mapfile -t wavs < <(find "$recdir" -name '*.wav' | sort)
			: >"$dir/wav-file.txt"
			if [ "${#wavs[@]}" -gt 0 ]; then
				for f in "${wavs[0]}" "${wavs[$((${#wavs[@]} / 2))]}" "${wavs[$((${#wavs[@]} - 1))]}"; do
					file "$f" >>"$dir/wav-file.txt" 2>&1
				done
				n=$(grep -c 'WAVE audio, Microsoft PCM, 16 bit, stereo 8000 Hz' "$dir/wav-file.txt")
			fi
			file_ok="$n/3"
			if [ "$KEEP_RECORDINGS" = 0 ]; then rm -rf "$recdir"; fi
		fi
	fi
	printf '%s\n' "$hold	$rate	$calls	$created	$ok	$failed	$pct	$achieved	$edge_cpu	$uac_cpu_pct	$uas_cpu	$mach	$rss_idle	$peak_active	$peak_rss	$per_call	$max_rss	$rss_end	$answered	$missed	$r503	$relayed	$dropped	$agents	$pass	${reasons:--}	$uac_rc	$timed_out	$media	$completed	$clean	$nomedia	$retried	$drops	${uas_ok:-0}	${uas_failed:-0}	$ended	$rtp_drops	$FLOW	$AUDIO	$ivr_answered	$prompt_sent	$prompt_pct	$ss_edge	$ss_uac	$ss_uas	$ss_mach	$rec_started	$rec_completed	$rec_failed	$rec_active_end	$consent_announced	$wav_files	$part_files	$du_bytes	$wav_bytes	$model_bytes	$edge_bytes	$json_bytes	$peak_rec_active	$peak_buffered	$behind	$late	$disk_mbps	$disk_util	$flush_rate	$iowait	$edge_wmbps	$header_ok	$sha_ok	$duration_ok	$sound_caller	$sound_agent	$with_caller	$with_agent	$file_ok	$ring_median	$ring_p99	$talk_mean	$path_ok	$flush_ms" >>"$OUT/results.tsv"
	log "  placed $created/$calls, sipp successful $ok, failed $failed ${reasons:+($reasons)}; edge clean $clean of $ended (media timeouts $nomedia, calls with an unanswered attempt $retried); completed $completed ($pct%); SIP socket drops edge/carrier/agent $drops; agent sipp ok/failed ${uas_ok:-0}/${uas_failed:-0}; achieved ${achieved}/s; CPU edge ${edge_cpu}% carrier ${uac_cpu_pct}% agent ${uas_cpu}% machine ${mach}% (of $((100 * $(nproc)))%); RSS idle $((rss_idle / 1024)) MB, at ${peak_active} active $((peak_rss / 1024)) MB (${per_call} kB/call), end $((rss_end / 1024)) MB; RTP relayed $relayed (${media}% of expected), dropped $dropped; RTP socket drops edge(max)/carrier/agent $rtp_drops; CPU at steady state edge ${ss_edge}% carrier ${ss_uac}% agent ${ss_uas}% machine ${ss_mach}%$([ "$FLOW" != queue ] && echo "; answered for the prompt $ivr_answered, prompt packets sent $prompt_sent (${prompt_pct}% of ${PROMPT_PACKETS} a call)")"
	[ "$FLOW" = record ] && log "  recordings: consent announced $consent_announced, started $rec_started, completed $rec_completed, failed $rec_failed, active at the end $rec_active_end; .wav $wav_files (.part left $part_files), du -sb $du_bytes, .wav bytes $wav_bytes against $model_bytes expected (32,000 x (hold - ${PROMPT_SECONDS} - ring) + 44 each; ring median ${ring_median} ms, p99 ${ring_p99} ms) and $edge_bytes from the edge's durations (mean ${talk_mean} s); peak active $peak_rec_active, peak buffered $peak_buffered bytes, writer behind $behind, late samples $late; at steady state disk ${disk_mbps} MB/s, busy ${disk_util}%, ${flush_rate} flushes/s (${flush_ms} ms each), iowait ${iowait}%, edge writes ${edge_wmbps} MB/s; wavcheck: header ok $header_ok, sha256 ok $sha_ok, duration ok $duration_ok, path ok $path_ok of $wav_files, with sound caller/agent $with_caller/$with_agent, frames with sound caller ${sound_caller}% agent ${sound_agent}%; file(1): $file_ok WAVE audio, Microsoft PCM, 16 bit, stereo 8000 Hz$([ -s "$dir/wavcheck.err" ] && echo "; problems in $dir/wavcheck.err")"
	[ "$pass" = 1 ]
}

# ---- the report ----
report() {
	local hold=$1
	echo
	if [ "$FLOW" != queue ]; then
		local what=prompt
		if [ "$FLOW" = record ]; then
			what=announcement
			echo "### Recording: the announcement ${PROMPT} (${PROMPT_SECONDS} s), then the queue, recorded; hold ${hold} s, $([ "$AUDIO" = 1 ] && echo "audio both ways (PCMA 20 ms)" || echo "no audio but the announcement")"
		else
			echo "### IVR: ${PROMPT} (${PROMPT_SECONDS} s) then the queue, hold ${hold} s, $([ "$AUDIO" = 1 ] && echo "audio both ways (PCMA 20 ms)" || echo "no audio but the prompt")"
		fi
		echo
		echo "| rate (calls/s) | calls | sipp successful / failed | edge answered for the $what / clean / media timeouts / re-rung | completed | achieved (calls/s) | CPU edge / carrier / agent / machine | at steady state | active calls at peak | edge RSS idle / at peak (MB) | $what packets sent (of 77 × answered) | RTP relayed (of expected) / dropped | RTP socket drops edge (most at once) / carrier / agent | SIP socket drops edge / carrier / agent | sipp failures |"
		echo "|---:|---:|---|---|---:|---:|---|---|---:|---|---|---|---|---|---|"
		awk -F'\t' -v h="$hold" '$1 == h { printf "| %s | %s | %s / %s | %s / %s / %s / %s | %s%% | %s | %s%% / %s%% / %s%% / %s%% | %s%% / %s%% / %s%% / %s%% | %s | %d / %d | %s (%s%%) | %s (%s%%) / %s | %s | %s | %s |\n", $2, $3, $5, $6, $41, $31, $32, $33, $7, $8, $9, $10, $11, $12, $44, $45, $46, $47, $14, $13 / 1024, $15 / 1024, $42, $43, $22, $29, $23, $38, $34, $26 }' "$OUT/results.tsv"
		if [ "$FLOW" = record ]; then
			echo
			echo "Recordings (MB = 10^6 bytes; expected: 32,000 × (hold − ${PROMPT_SECONDS} s − the call's agent ring time) + 44 for each recording completed; *peak* columns: the most seen in the 2-s samples; disk: the device under \$OUT at steady state):"
			echo
			echo "| rate (calls/s) | completed calls | consent announced / recordings started / completed / failed | .wav files / .part left | under recordings/ (du -sb) | .wav bytes (of expected) | .wav bytes (of the edge's durations) | mean talk recorded; agent ring median / p99 | recordings active at peak | buffered bytes at peak | writer behind / late samples | disk write / busy / flushes (ms each); iowait; edge writes | WAV check: header and sizes / sha256 / duration (of files) | with sound caller / agent; frames with sound caller / agent | file(1) |"
			echo "|---:|---:|---|---|---:|---|---|---|---:|---:|---|---|---|---|---|"
			awk -F'\t' -v h="$hold" 'function mb(x) { return (x ~ /^[0-9]+$/) ? sprintf("%.1f MB", x / 1e6) : x }
				function pc(a, b) { return (a ~ /^[0-9]+$/ && b + 0 > 0) ? sprintf("%.2f%%", 100 * a / b) : "-" }
				$1 == h { printf "| %s | %s | %s / %s / %s / %s | %s / %s | %s | %s (%s) | %s (%s) | %s s; %s / %s ms | %s | %s | %s / %s | %s MB/s / %s%% / %s/s (%s ms); %s%%; %s MB/s | %s / %s / %s (of %s) | %s / %s; %s%% / %s%% | %s |\n", $2, $30, $52, $48, $49, $50, $53, $54, mb($55), mb($56), pc($56, $57), mb($56), pc($56, $58), $79, $77, $78, $60, $61, $62, $63, $64, $65, $66, $81, $67, $68, $69, $70, $71, $53, $74, $75, $72, $73, $76 }' "$OUT/results.tsv"
		fi
	elif [ "$hold" -eq 0 ]; then
		echo "### Hold 0 s, no media"
		echo
		echo "| rate (calls/s) | calls | sipp successful / failed | edge clean / media timeouts / re-rung | completed | achieved (calls/s) | CPU edge / carrier / agent / machine | SIP socket drops edge / carrier / agent | edge RSS idle → end (MB) | sipp failures |"
		echo "|---:|---:|---|---|---:|---:|---|---|---|---|"
		awk -F'\t' -v h="$hold" '$1 == h { printf "| %s | %s | %s / %s | %s / %s / %s | %s%% | %s | %s%% / %s%% / %s%% / %s%% | %s | %d → %d | %s |\n", $2, $3, $5, $6, $31, $32, $33, $7, $8, $9, $10, $11, $12, $34, $13 / 1024, $18 / 1024, $26 }' "$OUT/results.tsv"
	elif [ "$AUDIO" = 0 ]; then
		echo "### Hold ${hold} s, no media"
		echo
		echo "| rate (calls/s) | calls | sipp successful / failed | edge clean / media timeouts / re-rung | completed | achieved (calls/s) | CPU edge / carrier / agent / machine | active calls at peak | edge RSS idle / at peak (MB) | SIP socket drops edge / carrier / agent | sipp failures |"
		echo "|---:|---:|---|---|---:|---:|---|---:|---|---|---|"
		awk -F'\t' -v h="$hold" '$1 == h { printf "| %s | %s | %s / %s | %s / %s / %s | %s%% | %s | %s%% / %s%% / %s%% / %s%% | %s | %d / %d | %s | %s |\n", $2, $3, $5, $6, $31, $32, $33, $7, $8, $9, $10, $11, $12, $14, $13 / 1024, $15 / 1024, $34, $26 }' "$OUT/results.tsv"
	else
		echo "### Hold ${hold} s, audio both ways (PCMA 20 ms)"
		echo
		echo "| rate (calls/s) | calls | sipp successful / failed | edge clean / media timeouts / re-rung | completed | achieved (calls/s) | CPU edge / carrier / agent / machine | active calls at peak | edge RSS idle / at peak (MB) | (RSS − idle) / active call | RTP relayed (of expected) / dropped | RTP socket drops edge (most at once) / carrier / agent | SIP socket drops edge / carrier / agent | sipp failures |"
		echo "|---:|---:|---|---|---:|---:|---|---:|---|---:|---|---|---|---|"
		awk -F'\t' -v h="$hold" '$1 == h { printf "| %s | %s | %s / %s | %s / %s / %s | %s%% | %s | %s%% / %s%% / %s%% / %s%% | %s | %d / %d | %s kB | %s (%s%%) / %s | %s | %s | %s |\n", $2, $3, $5, $6, $31, $32, $33, $7, $8, $9, $10, $11, $12, $14, $13 / 1024, $15 / 1024, $16, $22, $29, $23, ($38 == "" ? "-" : $38), $34, $26 }' "$OUT/results.tsv"
	fi
	local best
	best=$(awk -F'\t' -v h="$hold" '$1 == h && $25 == 1 && $2 > b { b = $2 } END { print b + 0 }' "$OUT/results.tsv")
	echo
	if [ "$best" -gt 0 ]; then
		echo "Highest rate with at least 99.9% of calls completed, hold ${hold} s: **${best} calls/s**."
		if [ "$hold" -gt 0 ] && [ "$AUDIO" = 1 ]; then
			local bm
			bm=$(awk -F'\t' -v h="$hold" '$1 == h && $25 == 1 && $29 + 0 >= 99 && $2 > b { b = $2 } END { print b + 0 }' "$OUT/results.tsv")
			if [ "$bm" -gt 0 ]; then
				echo "Highest of those with at least 99% of the expected RTP relayed: **${bm} calls/s**."
			else
				echo "None of those had at least 99% of the expected RTP relayed."
			fi
		fi
	else
		echo "Highest rate with at least 99.9% of calls completed, hold ${hold} s: none of the rates tried."
	fi
}

# ---- main ----
log "results in $OUT; $(nproc) cores, descriptors per process: $NOFILE"
need_audio=0
for h in $HOLD; do [ "$h" -gt 0 ] && [ "$AUDIO" = 1 ] && need_audio=1; done
if [ "$need_audio" = 1 ]; then
	(cd "$ROOT" && go run ./scripts/bench/pcap2raw "$PCAP" "$OUT/g711a.al") 2>/dev/null || die "cannot convert $PCAP to raw A-law"
fi
if [ "$FLOW" = record ]; then
	command -v file >/dev/null || die "file not found (Debian package file): FLOW=record checks recordings with it"
	(cd "$ROOT" && go build -o "$OUT/wavcheck" ./scripts/bench/wavcheck) || die "cannot build scripts/bench/wavcheck"
fi
: >"$OUT/results.tsv"
{
	echo "# machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "# $("$BIN" version 2>/dev/null); $("$SIPP" -v 2>&1 | grep -m1 -o 'SIPp v[^ ]*'); $(go version 2>/dev/null)"
} >"$OUT/machine.txt"

for hold in $HOLD; do
	if [ -n "$RATES" ]; then
		rates=$RATES
	elif [ "$hold" -eq 0 ]; then
		rates=$RATES_0
	else
		rates=$RATES_HOLD
	fi
	for rate in $rates; do
		if ! run_step "$hold" "$rate" && [ "$KEEP_GOING" != 1 ]; then
			log "hold ${hold}s: ${rate} calls/s fell under 99.9%, not climbing further"
			break
		fi
	done
done

{
	echo "## callsign load benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	sed 's/^# /- /' "$OUT/machine.txt"
	echo "- RTP ports $RTP_PORTS; open files per process: $NOFILE"
	[ "$FLOW" = ivr ] && echo "- flow: play $PROMPT (${PROMPT_SECONDS} s, built in), then queue bench"
	[ "$FLOW" = record ] && echo "- flow: record: announce (recording.consent.announce_prompt: $PROMPT, ${PROMPT_SECONDS} s, built in), then queue bench, recorded to storage.dir/recordings on $(df --output=source "$OUT" | tail -1) ($(df --output=fstype "$OUT" | tail -1)$([ -n "$OUT_DISK" ] && echo ", disk figures of $OUT_DISK in /proc/diskstats" || echo ", not a disk in /proc/diskstats: no disk figures"))"
	[ "$AUDIO" = 0 ] && echo "- no audio in the modes with a hold"
	for hold in $HOLD; do report "$hold"; done
} | tee "$OUT/report.md"
echo
echo "raw rows: $OUT/results.tsv; per step: $OUT/$([ "$FLOW" = ivr ] && echo ivr-)$([ "$FLOW" = record ] && echo rec-)hold*-rate*/"
