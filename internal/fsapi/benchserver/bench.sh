#!/usr/bin/env bash
# Load test of /fsapi Verto directory logins with wrk: SQLite and
# PostgreSQL, 16 and 64 connections, keep-alive and Connection: close.
#
#   internal/fsapi/benchserver/bench.sh            # needs wrk (apt-get install wrk)
#   DURATION=30s CACHE_TTL=-1s internal/fsapi/benchserver/bench.sh   # without the directory cache
#   SERVER_PROCS=1 WRK_THREADS=1 internal/fsapi/benchserver/bench.sh  # one core each for server and wrk
#
# On a 2-core machine the server's and wrk's threads preempt each other;
# that, not the server's work, makes most of the p99. SERVER_PROCS sets the
# server's GOMAXPROCS and WRK_THREADS wrk's threads to keep them apart.
set -euo pipefail
cd "$(dirname "$0")/../../.."
DURATION=${DURATION:-10s}
CACHE_TTL=${CACHE_TTL:-0}
PG=${CHANNELS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
ADDR=${ADDR:-127.0.0.1:18479}
work=$(mktemp -d)
server=""
pgdb=""
TCK=$(getconf CLK_TCK)
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process
cleanup() {
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
	if [ -n "$pgdb" ]; then psql -q "$PG" -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/benchserver" ./internal/fsapi/benchserver

run() { # name db
	GOMAXPROCS=${SERVER_PROCS:-$(nproc)} "$work/benchserver" -db "$2" -listen "$ADDR" -cache-ttl "$CACHE_TTL" >"$work/id" &
	server=$!
	for _ in $(seq 100); do [ -s "$work/id" ] && break; sleep 0.1; done
	sleep 0.3
	local id; id=$(head -1 "$work/id")
	# The directory lookup FreeSWITCH sent in the recording, for this client.
	local body="Core-UUID=6526765d-ebdc-4e4a-a857-f3511bb7bad6&Event-Calling-File=mod_verto.c&Event-Calling-Function=check_auth&Event-Calling-Line-Number=1073&Event-Date-GMT=Tue%2C+24+Nov+2026+18%3A12%3A45+GMT&Event-Date-Local=2026-11-24+18%3A12%3A45&Event-Date-Timestamp=1795543965359401&Event-Name=REQUEST_PARAMS&Event-Sequence=360&FreeSWITCH-Hostname=vm&FreeSWITCH-IPv4=192.0.2.2&FreeSWITCH-IPv6=fd00%3A%3A2&FreeSWITCH-Switchname=vm&action=jsonrpc-authenticate&domain=channels.test&hostname=vm&key=id&key_name=name&key_value=channels.test&section=directory&tag_name=domain&user=$id"
	cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "$body"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf fsuser:fspass | base64)"
LUA
	curl -sf -u fsuser:fspass --data "$body" "http://$ADDR/fsapi" | grep -q 'name="password"' || { echo "lookup failed" >&2; exit 1; }
	for conns in 16 64; do
		for mode in keep-alive close; do
			local hdr=()
			[ "$mode" = close ] && hdr=(-H "Connection: close")
			printf '%-8s c%-3s %-10s ' "$1" "$conns" "$mode"
			local before; before=$(cputicks "$server")
			wrk -t"${WRK_THREADS:-2}" -c"$conns" -d"$DURATION" --latency -s "$work/post.lua" "${hdr[@]}" "http://$ADDR/fsapi" >"$work/wrk.out"
			local after; after=$(cputicks "$server")
			# Server CPU per request (user + system), from /proc: independent
			# of what else the machine is doing.
			awk -v ticks=$((after - before)) -v tck="$TCK" '
				/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
				/requests in/ {n=$1} /Non-2xx|Socket errors/ {err=err" "$0}
				END {printf "%10s req/s  p50 %-8s p99 %-8s server CPU %5.1f µs/req%s\n", rps, p50, p99, ticks / tck * 1e6 / n, err}' "$work/wrk.out"
		done
	done
	kill "$server"; wait "$server" 2>/dev/null || true; server=""
}

run sqlite "$work/bench.db"
pgdb=channels_bench_$$
psql -q "$PG" -c "CREATE DATABASE $pgdb" >/dev/null
run postgres "${PG%/*}/$pgdb?sslmode=disable"
