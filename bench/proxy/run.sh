#!/usr/bin/env bash
# Load run of the proxy: wrk against (a) one replica directly, (b) the same replica
# through shoal's proxy, (c) the same replica through nginx as a plain reverse proxy
# with keep-alive upstreams. All three hit the same replica process, one after another,
# in one run, and the figures are printed as a Markdown table with ratios to (a), and
# the CPU time per request of the proxy process (shoal, or the nginx worker) and of the
# replica, from /proc: steadier than req/s on a shared machine.
#
# usage: bench/proxy/run.sh [DURATION] [CONNECTIONS] [THREADS] [ROUNDS]
# needs: wrk, nginx (Debian's wrk and nginx-light), ss (iproute2), curl, python3
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10s}
CONNS=${2:-64}
THREADS=${3:-2}
ROUNDS=${4:-3}

for tool in wrk nginx ss curl python3; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run 'make deps' first" >&2; exit 1; }
done
make -s build

work=$(mktemp -d)
cleanup() {
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	[ -n "${shoal_pid:-}" ] && kill "$shoal_pid" 2>/dev/null && wait "$shoal_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PROXY_PORT=$(free_port)
CONTROL_PORT=$(free_port)
NGINX_PORT=$(free_port)

cat >"$work/serve.yaml" <<YAML
http_options: {host: 127.0.0.1, port: $PROXY_PORT}
applications:
  - name: bench
    route_prefix: /
    deployments:
      - name: echo
        num_replicas: 1
        max_ongoing_requests: 1000
        command: ["$PWD/bin/replica"]
        health_check_path: /healthz
YAML

export SHOAL_AUTH_TOKEN=bench-admin-token
bin/shoal start "$work/serve.yaml" --state-dir "$work/state" --dashboard-port "$CONTROL_PORT" >"$work/shoal.log" 2>&1 &
shoal_pid=$!

# Wait for the replica to be RUNNING and find its pid, then its port.
pid=""
for _ in $(seq 1 200); do
	pid=$(curl -fsS -H "Authorization: Bearer $SHOAL_AUTH_TOKEN" "http://127.0.0.1:$CONTROL_PORT/api/serve/applications/" 2>/dev/null |
		python3 -c 'import json,sys
d=json.load(sys.stdin)
for a in d["applications"].values():
    for dep in a["deployments"].values():
        for r in dep["replicas"]:
            if r["state"]=="RUNNING": print(r["pid"])' 2>/dev/null | head -n1) || true
	[ -n "$pid" ] && break
	sleep 0.05
done
[ -n "$pid" ] || { echo "bench: shoal did not start a replica; its log:" >&2; cat "$work/shoal.log" >&2; exit 1; }
REPLICA_PORT=$(ss -ltnpH "sport != :$PROXY_PORT" | awk -v p="pid=$pid," 'index($0,p){split($4,a,":"); print a[length(a)]; exit}')
[ -n "$REPLICA_PORT" ] || { echo "bench: could not find the port of replica pid $pid" >&2; exit 1; }

cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream replica { server 127.0.0.1:$REPLICA_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://replica;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log"

# One nginx worker and one shoal process on two shared cores. shoal sets its own
# GOMAXPROCS to half the cores (one here) when its replicas share the host.
NGINX_WORKER=""
for _ in $(seq 1 50); do
	NGINX_WORKER=$(pgrep -P "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null | head -n1) && [ -n "$NGINX_WORKER" ] && break
	sleep 0.05
done
HZ=$(getconf CLK_TCK)
# CPU time (user + system, clock ticks) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # name url
	wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$2" 2>&1 | tee "$work/wrk.out" | python3 -c '
import re, sys
t = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
def ms(label):
    m = re.search(r"\s" + label + r"\s+([\d.]+)(us|ms|s)\b", t)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
sock = "yes" if re.search(r"Socket errors: ", t) else "no"
p50, p99 = ms("50%"), ms("99%")
n = errs.group(1) if errs else 0
print("%.0f %.3f %.3f %s %s" % (rps, p50, p99, n, sock))'
}

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t$THREADS -c$CONNS -d$DUR --latency, $ROUNDS rounds, best round of each reported"
declare -A best_rps best_p50 best_p99 best_pcpu best_rcpu
for round in $(seq 1 "$ROUNDS"); do
	for target in direct shoal nginx; do
		case $target in
		direct) url="http://127.0.0.1:$REPLICA_PORT/" ;;
		shoal) url="http://127.0.0.1:$PROXY_PORT/" ;;
		nginx) url="http://127.0.0.1:$NGINX_PORT/" ;;
		esac
		case $target in
		shoal) ppid=$shoal_pid ;;
		nginx) ppid=$NGINX_WORKER ;;
		*) ppid="" ;;
		esac
		p0=0 r0=$(ticks "$pid")
		[ -n "$ppid" ] && p0=$(ticks "$ppid")
		read -r rps p50 p99 non2xx sockerr < <(run "$target" "$url")
		p1=0 r1=$(ticks "$pid")
		[ -n "$ppid" ] && p1=$(ticks "$ppid")
		n=$(awk '/requests in/{print $1}' "$work/wrk.out")
		# CPU per request is steadier than req/s on a shared machine.
		pcpu=$(python3 -c "print(f'{($p1-$p0)/$HZ*1e6/$n:.1f}')")
		rcpu=$(python3 -c "print(f'{($r1-$r0)/$HZ*1e6/$n:.1f}')")
		[ -z "$ppid" ] && pcpu="-"
		echo "round $round $target: $rps req/s p50 ${p50}ms p99 ${p99}ms non-2xx $non2xx socket-errors $sockerr proxy-cpu ${pcpu}us/req replica-cpu ${rcpu}us/req" >&2
		if [ -z "${best_rps[$target]:-}" ] || [ "$rps" -gt "${best_rps[$target]}" ]; then
			best_rps[$target]=$rps best_p50[$target]=$p50 best_p99[$target]=$p99 best_pcpu[$target]=$pcpu best_rcpu[$target]=$rcpu
		fi
	done
done

echo
echo "| target | req/s | ratio to direct | p50 ms | p99 ms | proxy CPU µs/req | replica CPU µs/req |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for target in direct shoal nginx; do
	ratio=$(python3 -c "print(f'{${best_rps[$target]}/${best_rps[direct]}:.2f}')")
	echo "| $target | ${best_rps[$target]} | $ratio | ${best_p50[$target]} | ${best_p99[$target]} | ${best_pcpu[$target]} | ${best_rcpu[$target]} |"
done
