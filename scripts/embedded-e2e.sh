#!/usr/bin/env bash
# Embedded defaults end to end, against the processor alone in the same run
# (BENCHMARKS.md, "Embedded defaults end to end").
#
#   scripts/embedded-e2e.sh burst [ROUNDS]      # 100,000 events published at full speed
#   scripts/embedded-e2e.sh backlog [N]         # an N-message backlog (default 1,000,000) drained:
#                                               # processor alone under BASE_SYNC (default 2m),
#                                               # then the defaults under SYNC (default group)
#   scripts/embedded-e2e.sh table [N]           # the cost of durability: the burst (default
#                                               # 100,000) under each nats.sync policy (POLICIES,
#                                               # default "2m group always"), processor alone
#                                               # and defaults, printed as one table
#
# Each round starts `sightline run` on a fresh data directory twice: with
# the processor alone (index and archive off), then with the defaults
# (embedded index, archive, hosts; VARIANTS="defaults no-archive
# index-only" adds runs without the archive, and without archive and
# hosts). Environment: WORK (default
# /tmp/sightline-e2e), NATS_PORT (4308), HTTP_PORT (8108), SETS (more
# --set options for every run, e.g. SETS="--set nats.sync=2m").
set -euo pipefail
mode=${1:-burst}
WORK=${WORK:-/tmp/sightline-e2e}
NATS_PORT=${NATS_PORT:-4308}
HTTP_PORT=${HTTP_PORT:-8108}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK"
(cd "$root" && go build -o "$WORK/sightline" ./cmd/sightline && go build -o "$WORK/sightline-load" ./cmd/sightline-load)
sl=$WORK/sightline
load=$WORK/sightline-load
pid=

start() { # start DIR [--set k=v ...]: run sightline in DIR, wait for /readyz
	local dir=$1
	shift
	mkdir -p "$dir"
	local t0
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086 # SETS is split into options on purpose
	(cd "$dir" && exec "$sl" run --set nats.listen=127.0.0.1:$NATS_PORT --set http.listen=127.0.0.1:$HTTP_PORT ${SETS:-} "$@" >"$dir/run.log" 2>&1) &
	pid=$!
	until curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1; do
		kill -0 "$pid" 2>/dev/null || { echo "sightline run exited:"; tail -5 "$dir/run.log"; exit 1; }
		sleep 0.05
	done
	echo "ready after $(echo "$(date +%s.%N) - $t0" | bc) s"
}

cpu() { # CPU seconds (user + system) sightline run has used
	awk -v hz="$(getconf CLK_TCK)" '{printf "CPU %.1f s\n", ($14 + $15) / hz}' /proc/$pid/stat
}

stop() {
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
trap stop EXIT

processor_only=(--set index.enabled=false --set archive.enabled=false --set hosts.enabled=false)

case $mode in
burst)
	rounds=${2:-1}
	for r in $(seq "$rounds"); do
		echo "== round $r: processor alone"
		rm -rf "$WORK/run"
		start "$WORK/run" "${processor_only[@]}"
		"$load" publish -url nats://127.0.0.1:"$NATS_PORT" -n 100000 -size 512 -wait-events
		grep -m1 VmHWM /proc/$pid/status
		cpu
		stop
		for variant in ${VARIANTS:-defaults}; do
			echo "== round $r: embedded $variant"
			rm -rf "$WORK/run"
			case $variant in
			defaults) start "$WORK/run" ;;
			no-archive) start "$WORK/run" --set archive.enabled=false ;;
			index-only) start "$WORK/run" --set archive.enabled=false --set hosts.enabled=false ;;
			esac
			"$load" publish -url nats://127.0.0.1:"$NATS_PORT" -n 100000 -size 512 -wait-events -trace-api http://127.0.0.1:"$HTTP_PORT"
			grep -m1 VmHWM /proc/$pid/status
			cpu
			stop
		done
	done
	;;
backlog)
	n=${2:-1000000}
	if [ ! -d "$WORK/backlog-$n" ]; then
		"$load" backlog -dir "$WORK/backlog-$n" -n "$n" -size 512 -fill-only
	fi
	for what in processor defaults; do
		echo "== backlog of $n: $what"
		rm -rf "$WORK/run"
		mkdir -p "$WORK/run/.sightline"
		cp -r "$WORK/backlog-$n" "$WORK/run/.sightline/jetstream"
		if [ $what = processor ]; then
			start "$WORK/run" --set nats.sync="${BASE_SYNC:-2m}" "${processor_only[@]}"
			"$load" drain -url nats://127.0.0.1:"$NATS_PORT" -n "$n" -pid "$pid"
		else
			start "$WORK/run" --set nats.sync="${SYNC:-group}"
			"$load" drain -url nats://127.0.0.1:"$NATS_PORT" -n "$n" -consumer index -pid "$pid"
		fi
		cpu
		stop
	done
	;;
table)
	n=${2:-100000}
	declare -A secs
	for policy in ${POLICIES:-2m group always}; do
		for what in processor defaults; do
			echo "== $what, nats.sync=$policy"
			rm -rf "$WORK/run"
			if [ $what = processor ]; then
				start "$WORK/run" --set nats.sync="$policy" "${processor_only[@]}"
				out=$("$load" publish -url nats://127.0.0.1:"$NATS_PORT" -n "$n" -size 512 -wait-events)
				echo "$out"
				out=$(grep '^conformed' <<<"$out")
			else
				start "$WORK/run" --set nats.sync="$policy"
				out=$("$load" publish -url nats://127.0.0.1:"$NATS_PORT" -n "$n" -size 512 -wait-events -trace-api http://127.0.0.1:"$HTTP_PORT")
				echo "$out"
				out=$(grep '^searchable' <<<"$out")
			fi
			cpu
			stop
			# "...: 15600 ev/s": the run's time is n / rate.
			evs=$(grep -oE '[0-9.]+ ev/s' <<<"$out" | tail -1 | cut -d' ' -f1)
			secs[$what-$policy]=$(echo "$n / $evs" | bc -l)
		done
	done
	base=${secs[processor-2m]}
	echo
	echo "$n x 512-byte metrics, $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	printf '| what runs |'
	for policy in ${POLICIES:-2m group always}; do printf ' `nats.sync: %s` |' "$policy"; done
	printf '\n|---|'
	for policy in ${POLICIES:-2m group always}; do printf -- '---|'; done
	echo
	for what in processor defaults; do
		[ $what = processor ] && printf '| processor alone (conformed) |' || printf '| embedded defaults (searchable) |'
		for policy in ${POLICIES:-2m group always}; do
			s=${secs[$what-$policy]}
			printf ' %.1f s (%.0f ev/s, %.2fx) |' "$s" "$(echo "$n / $s" | bc -l)" "$(echo "$s / $base" | bc -l)"
		done
		echo
	done
	echo "(ratios against the processor alone under nats.sync: 2m, same run)"
	;;
*)
	echo "usage: $0 burst [ROUNDS] | backlog [N] | table [N]" >&2
	exit 2
	;;
esac
