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
compose_args=(-p "$PROJECT" -f docker-compose.yml)
# shellcheck source=lib/compose.sh
source scripts/lib/compose.sh

# -- 1. packages ---------------------------------------------------------------------------
install_packages
# -- 2. dockerd ----------------------------------------------------------------------------
start_dockerd
# -- 3. images, with no registry -------------------------------------------------------------
base_image
figure2_image

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
