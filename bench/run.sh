#!/usr/bin/env bash
# wsguard benchmark harness.
#
#   bench/run.sh [--install] [--quick] [--rounds N]
#                [--targets "direct nginx haproxy wsguard nginx-tls wsguard-tls"]
#                [--modes "echo handshake idle reauth rotation"] [--out FILE.md] [--perf] [--keep]
#
# Starts an echo upstream, nginx, HAProxy and (when bench/wsguard.toml exists)
# wsguard on free loopback ports, runs interleaved rounds of the loadgen modes
# (echo, handshake, idle, reauth) and prints a markdown table of medians, also
# written to FILE.md (JSON lines beside it). With wsguard, `rotation` runs once
# after the rounds: `benchtool rotation-storm` (its own wsguard process and
# JWKS server; 5000 connections present a new kid at once: it fails unless
# all authenticate with exactly one JWKS fetch; 200 in --quick). nginx-tls and
# wsguard-tls (not in the default targets) are nginx with `ssl` and wsguard
# with [listener.tls], on one P-256 certificate made by openssl for the run,
# the load generator connecting over TLS (wss://). Everything it starts is
# stopped on exit. --quick: tiny sizes, one round, < 60 s (CI smoke test of the harness).
# --perf: perf-record wsguard during its first run of the first mode selected
# (echo, or handshake with HS256 tokens; perf-*.data beside the results). --keep: keep the temp dir with configs and logs.
#
# Environment: BENCH_TARGET_DIR (cargo target dir, default the workspace's target/),
# WSGUARD_BIN (prebuilt wsguard; else `cargo build --release` at the repo root),
# WSGUARD_TEMPLATE (config template, default bench/wsguard.toml),
# BENCH_NGINX_WORKERS (default auto), BENCH_HAPROXY_THREADS (default auto),
# BENCH_LOADGEN_THREADS / BENCH_ECHO_THREADS (default 1), BENCH_ISS_HS256 /
# BENCH_ISS_ES256 (token `iss`, default bench-hs256 / bench-es256), BENCH_ES256_JWKS
# (serve the ES256 key as a JWKS over HTTP, for bench/wsguard-jwks.toml), BENCH_AUD
# (token `aud`), BENCH_REAUTH_LEAD (seconds, default 10; 2 in --quick),
# BENCH_IDLE_HOLD (default 15s), BENCH_QUIET_WAIT (before each run wait up to
# this long for the machine to be idle; default 30s, 0 in --quick).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
INSTALL=0 QUICK=0 ROUNDS=3 PERF=0 KEEP=0 OUT="" TARGETS="direct nginx haproxy wsguard"
while [[ $# -gt 0 ]]; do
    case $1 in
        --install) INSTALL=1 ;;
        --quick) QUICK=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --targets) TARGETS=$2; shift ;;
        --modes) MODES=$2; shift ;;
        --out) OUT=$2; shift ;;
        --perf) PERF=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n "2,/^set -euo/p" "$0" | sed "$ d"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 64 ;;
    esac
    shift
done
log() { echo "[bench] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ $INSTALL == 1 ]]; then
    log "installing nginx haproxy linux-perf"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q nginx haproxy linux-perf >/dev/null ||
        apt-get install -y -q nginx haproxy >/dev/null
fi

# 5000 idle connections need ~10k descriptors in a proxy: raise the soft limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
log "open files limit: $NOFILE"

# ---------------------------------------------------------------- build
# The workspace's own target dir: the harness and wsguard share release builds.
TARGET_DIR=${BENCH_TARGET_DIR:-$ROOT/target}
log "building harness (CARGO_TARGET_DIR=$TARGET_DIR)"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --release -p wsguard-bench)
BIN=$TARGET_DIR/release

WSG_TEMPLATE=${WSGUARD_TEMPLATE:-$BENCH/wsguard.toml}
HAVE_WSGUARD=0
if [[ " $TARGETS " == *" wsguard "* || " $TARGETS " == *" wsguard-tls "* ]]; then
    if [[ ! -f $WSG_TEMPLATE ]]; then
        log "NOTE: $WSG_TEMPLATE not found: skipping the wsguard target (and the reauth mode)"
    else
        if [[ -z ${WSGUARD_BIN:-} ]]; then
            log "building wsguard (cargo build --release)"
            (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --release -p wsguard)
            WSGUARD_BIN=$TARGET_DIR/release/wsguard
        fi
        HAVE_WSGUARD=1
    fi
fi
have() { command -v "$1" >/dev/null 2>&1; }
ACTIVE=""
for t in $TARGETS; do
    case $t in
        direct) ACTIVE+=" direct" ;;
        nginx) if have nginx; then ACTIVE+=" nginx"; else log "NOTE: nginx not installed (try --install): skipped"; fi ;;
        haproxy) if have haproxy; then ACTIVE+=" haproxy"; else log "NOTE: haproxy not installed (try --install): skipped"; fi ;;
        wsguard) [[ $HAVE_WSGUARD == 1 ]] && ACTIVE+=" wsguard" ;;
        nginx-tls) if have nginx; then ACTIVE+=" nginx-tls"; else log "NOTE: nginx not installed (try --install): skipped"; fi ;;
        wsguard-tls) [[ $HAVE_WSGUARD == 1 ]] && ACTIVE+=" wsguard-tls" ;;
        *) die "unknown target $t" ;;
    esac
done
read -r -a ACTIVE <<<"$ACTIVE"
[[ ${#ACTIVE[@]} -gt 0 ]] || die "no target to benchmark"

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d /tmp/wsguard-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
PERF_PID=""
stop_pid() { # pid: TERM, wait up to 5 s, then KILL; forget it
    local pid=$1 p keep=()
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $PERF_PID ]] && kill -TERM "$PERF_PID" 2>/dev/null
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ $rc != 0 || $KEEP == 1 ]]; then log "logs kept in $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port name logfile pid: the process must be up and listening
    for _ in $(seq 100); do
        kill -0 "$4" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            sleep 0.2
            kill -0 "$4" 2>/dev/null && return 0
            break
        fi
        sleep 0.1
    done
    tail -n 20 "$3" >&2 || true
    die "$2 did not start listening on 127.0.0.1:$1"
}
fill() { # template output key=value...
    local tpl=$1 out=$2; shift 2
    local args=(-e "/^#/s/@\([A-Z0-9_]*\)@/\1/g")
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$tpl" >"$out"
}

LOADGEN_THREADS=${BENCH_LOADGEN_THREADS:-1}
ECHO_THREADS=${BENCH_ECHO_THREADS:-1}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-auto}
HAPROXY_THREADS=${BENCH_HAPROXY_THREADS:-auto}
MAXCONN=$(( NOFILE / 2 - 100 ))
[[ $MAXCONN -gt 100000 ]] && MAXCONN=100000
# `iss` of minted tokens per algorithm (set to "" to leave the claim out).
ISS_HS256=${BENCH_ISS_HS256-bench-hs256}
ISS_ES256=${BENCH_ISS_ES256-bench-es256}
REAUTH_LEAD=${BENCH_REAUTH_LEAD:-10}
[[ $QUICK == 1 && -z ${BENCH_REAUTH_LEAD:-} ]] && REAUTH_LEAD=2
ECHO_ADDR=127.0.0.1:0
ECHO_PID="" NGINX_PID="" HAPROXY_PID="" WSG_PID="" NGINX_TLS_PID="" WSG_TLS_PID=""
NGINX_TLS_WORKER_PIDS=()

start_echo() { # first start picks a free port; restarts reuse it
    : >"$TMP/echo.addr"
    "$BIN/echo" --listen "$ECHO_ADDR" --threads "$ECHO_THREADS" >"$TMP/echo.addr" 2>>"$TMP/echo.log" &
    ECHO_PID=$!
    PIDS+=("$ECHO_PID")
    for _ in $(seq 100); do [[ -s $TMP/echo.addr ]] && break; sleep 0.1; done
    ECHO_ADDR=$(head -n 1 "$TMP/echo.addr")
    [[ -n $ECHO_ADDR ]] || die "echo upstream did not start"
}
start_nginx() {
    fill "$BENCH/nginx.conf" "$TMP/nginx.conf" "DIR=$TMP" "PORT=$NGINX_PORT" \
        "UPSTREAM=$ECHO_ADDR" "WORKERS=$NGINX_WORKERS" "NOFILE=$NOFILE" \
        "WORKER_CONNECTIONS=$(( NOFILE - 100 ))" "SSL=" "SSL_LINES="
    nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" >>"$TMP/nginx.out" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_port "$NGINX_PORT" nginx "$TMP/nginx-error.log" "$NGINX_PID"
    for _ in $(seq 50); do
        mapfile -t NGINX_WORKER_PIDS < <(pgrep -P "$NGINX_PID")
        [[ ${#NGINX_WORKER_PIDS[@]} -gt 0 ]] && return 0
        sleep 0.1
    done
    die "no nginx worker processes"
}
tls_certs() { # a CA and a P-256 leaf for localhost signed by it, in $TMP/tls
    mkdir -p "$TMP/tls"
    local d=$TMP/tls
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" \
        -out "$d/ca.crt" -days 2 -subj "/CN=wsguard bench CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/tls.key" \
        -out "$d/tls.csr" -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/ext"
    openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -out "$d/tls.crt" -days 2 -extfile "$d/ext" 2>/dev/null
}
start_nginx_tls() { # nginx with ssl, in its own prefix $TMP/tls
    local lines="ssl_certificate $TMP/tls/tls.crt; ssl_certificate_key $TMP/tls/tls.key; ssl_protocols TLSv1.2 TLSv1.3;"
    fill "$BENCH/nginx.conf" "$TMP/tls/nginx.conf" "DIR=$TMP/tls" "PORT=$NGINX_TLS_PORT" \
        "UPSTREAM=$ECHO_ADDR" "WORKERS=$NGINX_WORKERS" "NOFILE=$NOFILE" \
        "WORKER_CONNECTIONS=$(( NOFILE - 100 ))" "SSL= ssl" "SSL_LINES=$lines"
    nginx -p "$TMP/tls" -c "$TMP/tls/nginx.conf" -e "$TMP/tls/nginx-error.log" >>"$TMP/tls/nginx.out" 2>&1 &
    NGINX_TLS_PID=$!
    PIDS+=("$NGINX_TLS_PID")
    wait_port "$NGINX_TLS_PORT" nginx-tls "$TMP/tls/nginx-error.log" "$NGINX_TLS_PID"
    for _ in $(seq 50); do
        mapfile -t NGINX_TLS_WORKER_PIDS < <(pgrep -P "$NGINX_TLS_PID")
        [[ ${#NGINX_TLS_WORKER_PIDS[@]} -gt 0 ]] && return 0
        sleep 0.1
    done
    die "no nginx-tls worker processes"
}
start_haproxy() {
    local nb="# nbthread: HAProxy default"
    [[ $HAPROXY_THREADS != auto ]] && nb="nbthread $HAPROXY_THREADS"
    fill "$BENCH/haproxy.cfg" "$TMP/haproxy.cfg" "PORT=$HAPROXY_PORT" "UPSTREAM=$ECHO_ADDR" \
        "MAXCONN=$MAXCONN" "THREADS=$HAPROXY_THREADS" "NBTHREAD_LINE=$nb"
    haproxy -db -f "$TMP/haproxy.cfg" >>"$TMP/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    PIDS+=("$HAPROXY_PID")
    wait_port "$HAPROXY_PORT" haproxy "$TMP/haproxy.log" "$HAPROXY_PID"
}
wsguard_keys() {
    BENCH_HS256_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    export BENCH_HS256_SECRET
    printf '%s' "$BENCH_HS256_SECRET" >"$TMP/hs256.secret"
    openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null |
        openssl pkcs8 -topk8 -nocrypt -out "$TMP/es256.key"
    openssl ec -in "$TMP/es256.key" -pubout -out "$TMP/es256.pub" 2>/dev/null
    ES256_JWKS_URL=""
    if [[ -n ${BENCH_ES256_JWKS:-} ]]; then serve_es256_jwks; fi
}
serve_es256_jwks() { # BENCH_ES256_JWKS=1: the ES256 key as a JWKS over plain HTTP (for bench/wsguard-jwks.toml)
    python3 - "$TMP/es256.pub" "$TMP/es256.jwks.json" <<'PY'
import base64, json, sys
der = base64.b64decode("".join(l for l in open(sys.argv[1]) if "-----" not in l))
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
point = der[-64:]  # an uncompressed P-256 point ends the SubjectPublicKeyInfo
key = {"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "bench-es256", "x": b64(point[:32]), "y": b64(point[32:])}
json.dump({"keys": [key]}, open(sys.argv[2], "w"))
PY
    python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$TMP" >"$TMP/jwks-http.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do grep -q "port" "$TMP/jwks-http.log" 2>/dev/null && break; sleep 0.1; done
    ES256_JWKS_URL="http://127.0.0.1:$(grep -o 'port [0-9]*' "$TMP/jwks-http.log" | head -1 | cut -d' ' -f2)/es256.jwks.json"
}
start_wsguard() {
    fill "$WSG_TEMPLATE" "$TMP/wsguard.toml" "DIR=$TMP" "LISTEN=127.0.0.1:$WSGUARD_PORT" \
        "UPSTREAM=$ECHO_ADDR" "SECRET_FILE=$TMP/hs256.secret" "ES256_PUB=$TMP/es256.pub" \
        "REAUTH_LEAD=${REAUTH_LEAD}s" "ISS_HS256=$ISS_HS256" "ISS_ES256=$ISS_ES256" \
        "ES256_JWKS_URL=${ES256_JWKS_URL:-}"
    RUST_LOG=${RUST_LOG:-warn} "$WSGUARD_BIN" --config "$TMP/wsguard.toml" >>"$TMP/wsguard.log" 2>&1 &
    WSG_PID=$!
    PIDS+=("$WSG_PID")
    wait_port "$WSGUARD_PORT" wsguard "$TMP/wsguard.log" "$WSG_PID"
}
start_wsguard_tls() { # the same template, with [listener.tls] on the bench certificate
    fill "$WSG_TEMPLATE" "$TMP/wsguard-tls.toml" "DIR=$TMP" "LISTEN=127.0.0.1:$WSGUARD_TLS_PORT" \
        "UPSTREAM=$ECHO_ADDR" "SECRET_FILE=$TMP/hs256.secret" "ES256_PUB=$TMP/es256.pub" \
        "REAUTH_LEAD=${REAUTH_LEAD}s" "ISS_HS256=$ISS_HS256" "ISS_ES256=$ISS_ES256" \
        "ES256_JWKS_URL=${ES256_JWKS_URL:-}"
    printf '\n[listener.tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$TMP/tls/tls.crt" "$TMP/tls/tls.key" \
        >>"$TMP/wsguard-tls.toml"
    RUST_LOG=${RUST_LOG:-warn} "$WSGUARD_BIN" --config "$TMP/wsguard-tls.toml" >>"$TMP/wsguard-tls.log" 2>&1 &
    WSG_TLS_PID=$!
    PIDS+=("$WSG_TLS_PID")
    wait_port "$WSGUARD_TLS_PORT" wsguard-tls "$TMP/wsguard-tls.log" "$WSG_TLS_PID"
}
start_target() {
    case $1 in
        direct) start_echo ;;
        nginx) start_nginx ;;
        haproxy) start_haproxy ;;
        wsguard) start_wsguard ;;
        nginx-tls) start_nginx_tls ;;
        wsguard-tls) start_wsguard_tls ;;
    esac
}
restart_target() { # fresh process, same port (for memory measurements)
    case $1 in
        direct) stop_pid "$ECHO_PID" ;;
        nginx) stop_pid "$NGINX_PID" ;;
        haproxy) stop_pid "$HAPROXY_PID" ;;
        wsguard) stop_pid "$WSG_PID" ;;
        nginx-tls) stop_pid "$NGINX_TLS_PID" ;;
        wsguard-tls) stop_pid "$WSG_TLS_PID" ;;
    esac
    start_target "$1"
}
url_of() {
    case $1 in
        direct) echo "ws://$ECHO_ADDR/echo" ;;
        nginx) echo "ws://127.0.0.1:$NGINX_PORT/echo" ;;
        haproxy) echo "ws://127.0.0.1:$HAPROXY_PORT/echo" ;;
        wsguard) echo "ws://127.0.0.1:$WSGUARD_PORT/echo" ;;
        nginx-tls) echo "wss://localhost:$NGINX_TLS_PORT/echo" ;;
        wsguard-tls) echo "wss://localhost:$WSGUARD_TLS_PORT/echo" ;;
    esac
}
watch_args() { # the measured process(es), and the echo upstream beside them
    case $1 in
        direct) echo "--watch-pid $ECHO_PID" ;;
        nginx) echo "$(printf -- '--watch-pid %s ' "${NGINX_WORKER_PIDS[@]}")--upstream-pid $ECHO_PID" ;;
        haproxy) echo "--watch-pid $HAPROXY_PID --upstream-pid $ECHO_PID" ;;
        wsguard) echo "--watch-pid $WSG_PID --upstream-pid $ECHO_PID" ;;
        nginx-tls) echo "$(printf -- '--watch-pid %s ' "${NGINX_TLS_WORKER_PIDS[@]}")--upstream-pid $ECHO_PID --ca $TMP/tls/ca.crt" ;;
        wsguard-tls) echo "--watch-pid $WSG_TLS_PID --upstream-pid $ECHO_PID --ca $TMP/tls/ca.crt" ;;
    esac
}

start_echo
log "echo upstream on $ECHO_ADDR (pid $ECHO_PID)"
# Ports for the proxies, picked after the echo upstream holds its own.
mapfile -t PORTS < <("$BIN/benchtool" free-ports 5)
NGINX_PORT=${PORTS[0]} HAPROXY_PORT=${PORTS[1]} WSGUARD_PORT=${PORTS[2]}
NGINX_TLS_PORT=${PORTS[3]} WSGUARD_TLS_PORT=${PORTS[4]}
[[ " ${ACTIVE[*]} " == *" wsguard"* ]] && wsguard_keys
[[ " ${ACTIVE[*]} " == *"-tls "* ]] && tls_certs
for t in "${ACTIVE[@]}"; do
    [[ $t == direct ]] && continue
    start_target "$t"
    case $t in
        nginx) log "nginx $(nginx -v 2>&1 | sed 's|.*/||') on :$NGINX_PORT, worker_processes $NGINX_WORKERS = ${#NGINX_WORKER_PIDS[@]} workers" ;;
        haproxy) log "haproxy $(haproxy -v | head -n 1 | awk '{print $3}') on :$HAPROXY_PORT, threads: $(ls /proc/"$HAPROXY_PID"/task | wc -l)" ;;
        wsguard) log "wsguard on :$WSGUARD_PORT (pid $WSG_PID, reauth_lead ${REAUTH_LEAD}s)" ;;
        nginx-tls) log "nginx-tls on :$NGINX_TLS_PORT, ${#NGINX_TLS_WORKER_PIDS[@]} workers" ;;
        wsguard-tls) log "wsguard-tls on :$WSGUARD_TLS_PORT (pid $WSG_TLS_PID)" ;;
    esac
done

# ---------------------------------------------------------------- runs
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=$TARGET_DIR/bench-results
mkdir -p "$RESULTS_DIR"
SUFFIX=""
[[ $QUICK == 1 ]] && SUFFIX=-quick
[[ -n $OUT ]] || OUT=$RESULTS_DIR/bench-$STAMP$SUFFIX.md
JSONL=${OUT%.md}.jsonl
: >"$JSONL"
FAILED_RUNS=0

auth_args() { # target alg
    if [[ $1 != wsguard && $1 != wsguard-tls ]]; then echo "--no-auth"; return; fi
    local a="--alg $2 --secret-env BENCH_HS256_SECRET --es256-key $TMP/es256.key"
    local iss=$ISS_HS256
    [[ $2 == es256 ]] && iss=$ISS_ES256
    [[ -n $iss ]] && a+=" --iss $iss"
    [[ -n ${BENCH_AUD:-} ]] && a+=" --aud $BENCH_AUD"
    echo "$a"
}
lg() { # target alg mode-args...
    local t=$1 alg=$2 rc=0 q; shift 2
    if [[ $QUIET_WAIT != 0 ]]; then
        # Other work on this 2-core machine skews everything: wait for quiet.
        q=$("$BIN/benchtool" wait-quiet --timeout "$QUIET_WAIT")
        [[ $q == busy* ]] && log "machine still busy before $t $*: $q"
    fi
    # shellcheck disable=SC2046 # word splitting of the option strings is intended
    "$BIN/loadgen" --target "$t" --url "$(url_of "$t")" --tag "round$ROUND" --json-out "$JSONL" \
        --threads "$LOADGEN_THREADS" $(watch_args "$t") $(auth_args "$t" "$alg") "$@" || rc=$?
    if [[ $rc != 0 ]]; then
        FAILED_RUNS=$((FAILED_RUNS + 1))
        log "loadgen $t $* exited $rc (recorded in the results)"
    fi
}
rotate() { # print ACTIVE rotated by $1
    local n=${#ACTIVE[@]} i
    for ((i = 0; i < n; i++)); do printf '%s ' "${ACTIVE[(i + $1) % n]}"; done
}

QUIET_WAIT=${BENCH_QUIET_WAIT:-30s}
MODES=" ${MODES:-echo handshake idle reauth rotation} "
mode_on() { [[ $MODES == *" $1 "* ]]; }
if [[ $QUICK == 1 ]]; then
    ROUNDS=1
    QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
    ECHO_CASES=("10 50 64")
    HS=(--concurrency 10 --total 200)
    IDLE=(--conns 100 --settle 1s --hold 2s)
    REAUTH=(--conns 100 --expire-in "$(( REAUTH_LEAD + 4 ))s" --grace 10s)
else
    ECHO_CASES=("100 2000 64" "1000 500 64")
    # BENCH_ECHO_CASES="100 2000 64 text;100 500 32768 text" replaces them
    # ("conns msgs size [text]"; text: JSON chat messages in text frames).
    [[ -n ${BENCH_ECHO_CASES:-} ]] && IFS=';' read -r -a ECHO_CASES <<<"$BENCH_ECHO_CASES"
    HS=(--concurrency 50 --total 5000)
    IDLE=(--conns 5000 --settle 5s --hold "${BENCH_IDLE_HOLD:-15s}")
    REAUTH=(--conns 5000 --expire-in "$(( REAUTH_LEAD + 20 ))s" --grace 20s)
fi

run_perf() { # start perf on wsguard for the first echo run when --perf
    [[ $PERF == 1 && -n ${WSG_PID:-} && -z $PERF_PID && ! -f $RESULTS_DIR/perf-$STAMP.data ]] || return 0
    # shellcheck disable=SC2086 # BENCH_PERF_ARGS is a list of options
    perf record ${BENCH_PERF_ARGS:--F 999 --call-graph dwarf,8192} -p "$WSG_PID" \
        -o "$RESULTS_DIR/perf-$STAMP.data" >"$TMP/perf.log" 2>&1 &
    PERF_PID=$!
    sleep 1 # let perf attach before the load starts
}
stop_perf() {
    [[ -n $PERF_PID ]] || return 0
    # SIGINT is ignored by background jobs of a script; perf also stops on TERM.
    kill -TERM "$PERF_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PERF_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    log "perf profile: $RESULTS_DIR/perf-$STAMP.data (perf report -i ...)"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    log "round $ROUND/$ROUNDS"
    read -r -a ORDER <<<"$(rotate $((ROUND - 1)))"
    mode_on echo && for c in "${ECHO_CASES[@]}"; do
        read -r conns msgs size kind <<<"$c"
        for t in "${ORDER[@]}"; do
            [[ $t == wsguard && $ROUND == 1 ]] && run_perf
            # shellcheck disable=SC2046 # no option, or --text
            lg "$t" hs256 echo --conns "$conns" --msgs "$msgs" --size "$size" $([[ ${kind:-} == text ]] && echo --text)
            stop_perf
        done
    done
    mode_on handshake && for t in "${ORDER[@]}"; do
        if [[ $t == wsguard || $t == wsguard-tls ]]; then
            for alg in hs256 es256; do
                [[ $ROUND == 1 ]] && run_perf
                lg "$t" "$alg" handshake "${HS[@]}"
                stop_perf
                lg "$t" "$alg" handshake "${HS[@]}" --shared-token
            done
        else
            lg "$t" none handshake "${HS[@]}"
        fi
    done
    # Idle memory is measured on a freshly started process: allocators keep
    # freed memory, so a process that already held many connections reads low.
    mode_on idle && for t in "${ORDER[@]}"; do
        restart_target "$t"
        lg "$t" hs256 idle "${IDLE[@]}"
    done
    if mode_on reauth && [[ " ${ACTIVE[*]} " == *" wsguard "* ]]; then
        for alg in hs256 es256; do lg wsguard "$alg" reauth "${REAUTH[@]}"; done
    fi
done

if mode_on rotation && [[ " ${ACTIVE[*]} " == *" wsguard "* ]]; then
    STORM=()
    [[ $QUICK == 1 ]] && STORM=(--quick)
    if ! "$BIN/benchtool" rotation-storm --wsguard "$WSGUARD_BIN" "${STORM[@]}" | tee -a "$TMP/rotation.jsonl"; then
        FAILED_RUNS=$((FAILED_RUNS + 1))
        log "rotation-storm failed"
    fi
fi

# ---------------------------------------------------------------- report
{
    echo "## wsguard benchmark $STAMP$SUFFIX"
    echo
    echo "- machine: $(nproc) cores, $(uname -sr); rounds: $ROUNDS (cells are medians), wall time $((SECONDS - T0)) s"
    echo "- git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (dirty)')"
    echo "- loadgen threads: $LOADGEN_THREADS; echo upstream threads: $ECHO_THREADS; all on 127.0.0.1"
    [[ -n ${NGINX_WORKER_PIDS:-} ]] && echo "- nginx $(nginx -v 2>&1 | sed 's|.*/||'): worker_processes $NGINX_WORKERS (${#NGINX_WORKER_PIDS[@]} workers)"
    [[ -n ${HAPROXY_PID:-} ]] && echo "- haproxy $(haproxy -v | head -n 1 | awk '{print $3}'): threads $HAPROXY_THREADS"
    [[ -n ${WSG_PID:-} ]] && echo "- wsguard: reauth_lead ${REAUTH_LEAD}s"
    echo "- target CPU = utime+stime of the proxy (or of the echo server for direct), 10 ms resolution;" \
        "other CPU % = CPU used during the window by processes other than target, echo and loadgen" \
        "(% of one core; should be ~0 — if not, something else was running)"
    echo "- load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- idle: each run on a freshly started target process"
    [[ -s $TMP/rotation.jsonl ]] && echo "- rotation storm: $(cat "$TMP/rotation.jsonl")"
    [[ $FAILED_RUNS -gt 0 ]] && echo "- WARNING: $FAILED_RUNS runs exited non-zero (see errors columns and $JSONL)"
    "$BIN/benchtool" table "$JSONL"
} | tee "$OUT"
log "results: $OUT (raw: $JSONL)"
[[ $FAILED_RUNS == 0 ]]
