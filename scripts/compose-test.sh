#!/usr/bin/env bash
# The docker compose demo as a test, on a Debian bookworm machine with no image registry.
#
#  1. Installs what is missing from Debian's packages: docker.io, docker-compose (1.29),
#     debootstrap, curl.
#  2. Starts dockerd (--storage-driver=vfs) in the background if none answers, and stops
#     it at the end only if it started it.
#  3. The no-registry build: a local base image figure2-local/bookworm made by
#     `debootstrap --variant=minbase --include=curl,ca-certificates bookworm` and
#     `docker import` (kept as a cache: skipped when the image exists); the binaries built
#     on this host with `cargo build --release` (Debian bookworm: the runtime image's
#     glibc); docker/Dockerfile.prebuilt copies them into the local base image. No image
#     is pulled: the stack runs with `up --no-build` on that image. (With a registry,
#     `docker compose up --build` builds the root Dockerfile instead.)
#  4. Runs docker-compose.yml as project figure2-compose-test, with its ports on
#     127.0.0.1:18480/18481, and asserts from the client's log: A/B, C/D, then E/F
#     invalid_token, G/H refresh 200, C/D 200. Runs `client --once`, which must exit 0.
#  5. Restarts the authorization server and asserts that the client refreshes again
#     (G/H 200, then C/D 200) with no new step A, with the same signing key; then stops it
#     for 10 s (the client's refresh fails, it retries with backoff) and starts it again:
#     same assertions.
#  6. Tears down: containers, network and volume (`down -v`).
#
# Every wait has a time limit, and the whole script runs under a watchdog (COMPOSE_TEST_TIMEOUT,
# default 1080 s). Traffic stays on loopback and inside the compose network, apart from the
# Debian mirror (apt-get, debootstrap) and crates.io (cargo), as for the rest of CI.
#
# Usage: bash scripts/compose-test.sh    (as root; KEEP_STACK=1 leaves the stack, and a
# dockerd it started, running)
set -euo pipefail
cd "$(dirname "$0")/.."

# The watchdog: the script re-runs itself under timeout(1); on expiry the EXIT trap still
# tears everything down (dockerd runs in a session of its own so the timeout spares it).
if [ -z "${FIGURE2_COMPOSE_TEST_CHILD:-}" ]; then
  export FIGURE2_COMPOSE_TEST_CHILD=1
  exec timeout --kill-after=90 "${COMPOSE_TEST_TIMEOUT:-1080}" bash "$0" "$@"
fi

PROJECT=figure2-compose-test
BASE_IMAGE=figure2-local/bookworm
export FIGURE2_IMAGE=figure2-local/figure2:compose-test
export FIGURE2_AS_PORT=${FIGURE2_AS_PORT:-18480}
export FIGURE2_RS_PORT=${FIGURE2_RS_PORT:-18481}
export FIGURE2_ACCESS_TOKEN_LIFETIME=5 FIGURE2_INTERVAL=2 FIGURE2_IGNORE_EXPIRES_IN=true
export COMPOSE_HTTP_TIMEOUT=120
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
started=$(date +%s)
dockerd_pid=
compose_up=

log() { echo "== [$(($(date +%s) - started))s] $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$compose_up" ]; then
    if [ $rc -ne 0 ]; then
      echo "---- logs (last 40 lines per service)" >&2
      timeout 60 "${compose[@]}" logs --no-color --tail=40 >&2 || true
    fi
    if [ -n "${KEEP_STACK:-}" ] && [ $rc -eq 0 ]; then
      log "KEEP_STACK: leaving project $PROJECT running (${compose[*]} down -v to remove it)"
    else
      log "tearing down (down -v)"
      timeout 120 "${compose[@]}" down -v --remove-orphans || echo "warning: down -v failed" >&2
    fi
  fi
  if [ -n "$dockerd_pid" ] && [ -n "${KEEP_STACK:-}" ] && [ $rc -eq 0 ]; then
    log "KEEP_STACK: leaving the dockerd this script started running (pid $dockerd_pid)"
  elif [ -n "$dockerd_pid" ]; then
    log "stopping the dockerd this script started (pid $dockerd_pid)"
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  if [ $rc -eq 0 ]; then log "compose test passed"; else echo "compose test FAILED (exit $rc)" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# -- 1. packages -------------------------------------------------------------------------
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  need+=(docker-compose)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  timeout 300 apt-get update -q
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
else
  compose_cmd=(docker-compose)
fi
compose=("${compose_cmd[@]}" -p "$PROJECT" -f docker-compose.yml)
log "compose: $("${compose_cmd[@]}" version 2>/dev/null | head -1)"

# -- 2. dockerd ----------------------------------------------------------------------------
if ! timeout 20 docker info >/dev/null 2>&1; then
  log "starting dockerd --storage-driver=vfs"
  setsid dockerd --storage-driver=vfs >"$work/dockerd.log" 2>&1 </dev/null &
  dockerd_pid=$!
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 "$work/dockerd.log" >&2; fail "dockerd exited"; }
    sleep 1
  done
  timeout 5 docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log" >&2; fail "dockerd did not answer in 60 s"; }
fi

# -- 3. images, with no registry -------------------------------------------------------------
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE exists: no debootstrap"
else
  log "debootstrap bookworm (minbase, curl, ca-certificates) from $MIRROR"
  t=$(date +%s)
  timeout 900 debootstrap --variant=minbase --include=curl,ca-certificates bookworm "$work/rootfs" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | timeout 300 docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/bash"]' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$work/rootfs"
  log "$BASE_IMAGE imported ($(($(date +%s) - t)) s for debootstrap and import)"
fi

log "cargo build --release (the three binaries, on this host)"
t=$(date +%s)
timeout 1000 cargo build --release -q -p figure2-authorization-server -p figure2-resource-server -p figure2-client
mkdir -p "$work/context/rootfs/usr/local/bin" "$work/context/rootfs/etc/figure2"
cp target/release/authorization-server target/release/resource-server target/release/client \
  "$work/context/rootfs/usr/local/bin/"
cp config/demo.toml "$work/context/rootfs/etc/figure2/demo.toml"
cp docker/Dockerfile.prebuilt "$work/context/Dockerfile"
log "binaries built ($(($(date +%s) - t)) s); docker build of $FIGURE2_IMAGE from $BASE_IMAGE"
t=$(date +%s)
# The classic builder: it reads no registry for a local FROM image, BuildKit may try.
DOCKER_BUILDKIT=0 timeout 600 docker build -q --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
  -t "$FIGURE2_IMAGE" "$work/context" >/dev/null
log "image built ($(($(date +%s) - t)) s)"

# -- 4. the stack ----------------------------------------------------------------------------
"${compose[@]}" config -q
compose_up=1
log "up -d --no-build (waits for the servers' health checks)"
timeout 300 "${compose[@]}" up -d --no-build
client=$("${compose[@]}" ps -q client)
[ -n "$client" ] || fail "no client container"
for service in authorization-server resource-server; do
  for port in $(docker port "$("${compose[@]}" ps -q "$service")" | sed 's/.* -> //'); do
    case "$port" in 127.0.0.1:*) ;; *) fail "$service is published on $port, not on 127.0.0.1 only" ;; esac
  done
done

client_log() { timeout 30 docker logs "$client" 2>&1; }

# A/B, C/D, E/F invalid_token, G/H refresh 200, C/D 200: Figure 2 end to end.
a_to_h() {
  awk '
    s == 0 && /^\(A\)->\(B\) grant 200/ { s = 1; next }
    s == 1 && /^\(C\)->\(D\) .* 200$/ { s = 2; next }
    s == 2 && /^\(E\)->\(F\) .* 401 invalid_token$/ { s = 3; next }
    s == 3 && /^\(G\)->\(H\) refresh 200/ { s = 4; next }
    s == 4 && /^\(C\)->\(D\) .* 200$/ { s = 5; exit }
    END { exit s == 5 ? 0 : 1 }'
}
# After a restart: G/H refresh 200 then C/D 200, and no step A at all.
refresh_without_a() {
  awk '
    /^\(A\)/ { a = 1 }
    s == 0 && /^\(G\)->\(H\) refresh 200/ { s = 1; next }
    s == 1 && /^\(C\)->\(D\) .* 200$/ { s = 2 }
    END { exit (s == 2 && !a) ? 0 : 1 }'
}
wait_until() { # wait_until SECONDS WHAT COMMAND...
  local limit=$1 what=$2
  shift 2
  local until=$(($(date +%s) + limit))
  while ! "$@"; do
    [ "$(date +%s)" -lt "$until" ] || fail "$what: not within ${limit}s"
    sleep 1
  done
}
running() { [ "$(docker inspect -f '{{.State.Running}}' "$client" 2>/dev/null)" = true ]; }
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" ps -q "$1")" 2>/dev/null)" = healthy ]; }
kids() { curl -fsS --max-time 5 "http://127.0.0.1:$FIGURE2_AS_PORT/jwks.json" | grep -o '"kid":"[^"]*"' | sort; }

cycle_ok() { client_log | a_to_h; }
wait_until 90 "the client's A to H (with E/F invalid_token, then G/H)" cycle_ok
log "client walked A to H:"
client_log | grep -E '^\([A-H]\)' | head -8 | sed 's/^/    /'
running || fail "the client stopped"

log "one-shot: run --rm client --once"
timeout 120 "${compose[@]}" run --rm -T --no-deps client --once >"$work/once.log" 2>&1 ||
  { cat "$work/once.log" >&2; fail "client --once did not exit 0"; }
grep -q '^A to H done' "$work/once.log" || { cat "$work/once.log" >&2; fail "client --once: no 'A to H done'"; }
sed 's/^/    /' "$work/once.log"

# -- 5. restart the authorization server -----------------------------------------------------
keys_before=$(kids)
[ -n "$keys_before" ] || fail "no kid in /jwks.json"
mark=$(client_log | wc -l)
log "restart authorization-server (the client has $mark log lines)"
timeout 120 "${compose[@]}" restart authorization-server
wait_until 60 "authorization-server healthy again" healthy authorization-server
[ "$(kids)" = "$keys_before" ] || fail "the signing keys changed across the restart"
after_restart() { client_log | tail -n +"$((mark + 1))" | refresh_without_a; }
wait_until 90 "a refresh after the restart with no new step A" after_restart
running || fail "the client stopped"
log "after the restart, with the refresh token and signing key of before:"
client_log | tail -n +"$((mark + 1))" | grep -E '^\([A-H]\)|^client:' | head -8 | sed 's/^/    /'
client_log | tail -n +"$((mark + 1))" | grep -q '^(A)' && fail "the client went back to step A"

# A longer outage than a restart: the client must meet it (its refresh fails), retry with
# backoff instead of exiting, and carry on with the same grant once the server is back.
mark=$(client_log | wc -l)
log "stop authorization-server for 10 s"
timeout 60 "${compose[@]}" stop authorization-server
sleep 10
retried() { client_log | tail -n +"$((mark + 1))" | grep -q 'retrying in'; }
retried || fail "the client did not meet the outage (no 'retrying in' in its log)"
running || fail "the client exited during the outage"
timeout 60 "${compose[@]}" start authorization-server
wait_until 60 "authorization-server healthy again" healthy authorization-server
wait_until 90 "a refresh after the outage with no new step A" after_restart
running || fail "the client stopped"
log "through the outage:"
client_log | tail -n +"$((mark + 1))" | grep -E '^\([EGH]\)|^client:' | head -10 | sed 's/^/    /'
client_log | tail -n +"$((mark + 1))" | grep -q '^(A)' && fail "the client went back to step A"

log "all assertions passed"
