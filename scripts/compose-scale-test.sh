#!/usr/bin/env bash
# docker-compose.yml's `scale` profile as a test: two authorization servers over one
# PostgreSQL database behind HAProxy, on a Debian bookworm machine with no image registry.
#
#  1. The same preparation as scripts/compose-test.sh (scripts/lib/compose.sh): packages,
#     dockerd, the local base image and the figure2 image (both cached by docker, so after
#     compose-test.sh this costs seconds), and the image of docker/Dockerfile.scale
#     (Debian's postgresql and haproxy installed into the local base image; cached too).
#  2. Starts the profile's client and what it depends on (postgres, two instances of
#     authorization-server-scaled, balancer, resource-server-scaled) as project
#     figure2-compose-scale-test, the balancer on 127.0.0.1:18490; none of the default
#     services runs.
#  3. Asserts: the client's A to H through the balancer (E/F invalid_token, G/H refresh 200);
#     both instances answer through the balancer (HAProxy's log names the instance of every
#     request) and publish the same JWKS.
#  4. Right after a refresh, `docker kill` of the instance that answered it: the client
#     refreshes again (G/H 200, C/D 200) with no new step A, every token request after the
#     kill answered 200 by the survivor. Then the killed instance is started again and
#     rejoins (health check, same JWKS).
#  5. The conformance catalogue in remote mode (`figure2 check`, the flags of
#     scripts/remote-check.sh) against the balancer, from a container on the stack's
#     network (the issuer is http://balancer:8080 for everyone): with the password grant,
#     then with --token-command (an authorization-code login whose page, form and code
#     exchange go round robin too). Both must report 0 failed, with requests answered by
#     both instances.
#  6. Tears down (`down -v`) and stops a dockerd it started.
#
# Bounded by a watchdog (COMPOSE_SCALE_TEST_TIMEOUT, default 900 s) and a limit on every
# wait. Traffic stays on loopback and inside the compose network, apart from the Debian
# mirror (apt-get, debootstrap) and crates.io (cargo).
#
# Usage: bash scripts/compose-scale-test.sh    (as root; KEEP_STACK=1 leaves the stack running)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${FIGURE2_COMPOSE_SCALE_TEST_CHILD:-}" ]; then
  export FIGURE2_COMPOSE_SCALE_TEST_CHILD=1
  exec timeout --kill-after=90 "${COMPOSE_SCALE_TEST_TIMEOUT:-900}" bash "$0" "$@"
fi

PROJECT=figure2-compose-scale-test
BASE_IMAGE=figure2-local/bookworm
export FIGURE2_IMAGE=figure2-local/figure2:compose-test
export FIGURE2_SCALE_IMAGE=figure2-local/figure2-scale:compose-test
export FIGURE2_SCALE_AS_PORT=${FIGURE2_SCALE_AS_PORT:-18490}
export FIGURE2_SCALE_RS_PORT=${FIGURE2_SCALE_RS_PORT:-18491}
export FIGURE2_ACCESS_TOKEN_LIFETIME=5 FIGURE2_INTERVAL=2 FIGURE2_IGNORE_EXPIRES_IN=true
export COMPOSE_HTTP_TIMEOUT=120
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
started=$(date +%s)
compose_args=(-p "$PROJECT" -f docker-compose.yml --profile scale)
# shellcheck source=lib/compose.sh
source scripts/lib/compose.sh

# -- 1. packages, dockerd, images --------------------------------------------------------------
install_packages
start_dockerd
base_image
figure2_image
log "docker build of $FIGURE2_SCALE_IMAGE (docker/Dockerfile.scale: postgresql, haproxy) from $BASE_IMAGE"
t=$(date +%s)
DOCKER_BUILDKIT=0 timeout 900 docker build -q --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
  -t "$FIGURE2_SCALE_IMAGE" -f docker/Dockerfile.scale docker >/dev/null
log "image built ($(($(date +%s) - t)) s); cargo build --release -p figure2 (the conformance checker)"
timeout 1000 cargo build --release -q -p figure2

# -- 2. the stack --------------------------------------------------------------------------------
"${compose[@]}" config -q
compose_up=1
log "up -d --no-build client-scaled (and what it depends on; waits for the health checks)"
timeout 300 "${compose[@]}" up -d --no-build client-scaled
client=$("${compose[@]}" ps -q client-scaled)
balancer=$("${compose[@]}" ps -q balancer)
mapfile -t instances < <("${compose[@]}" ps -q authorization-server-scaled)
[ -n "$client" ] && [ -n "$balancer" ] || fail "no client or balancer container"
[ ${#instances[@]} -eq 2 ] || fail "${#instances[@]} authorization-server-scaled containers, not 2"
for service in authorization-server resource-server client; do
  [ -z "$("${compose[@]}" ps -q "$service" 2>/dev/null)" ] || fail "the default service $service runs too"
done
for service in balancer resource-server-scaled; do
  for port in $(docker port "$("${compose[@]}" ps -q "$service")" | sed 's/.* -> //'); do
    case "$port" in 127.0.0.1:*) ;; *) fail "$service is published on $port, not on 127.0.0.1 only" ;; esac
  done
done
net=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$balancer")

client_log() { timeout 30 docker logs "$client" 2>&1; }
# HAProxy's request lines (docker/scale/etc/haproxy/haproxy.cfg log-format):
#   client frontend backend/slot instance-ip:port status method path total-ms
balancer_log() { timeout 30 docker logs "$balancer" 2>&1 | awk '$3 ~ /^authorization-servers/'; }
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
name_of() { docker inspect -f '{{.Name}}' "$1" | sed 's|^/||'; }
running() { [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)" = healthy ]; }
jwks_at() { timeout 10 docker exec "$1" curl -fsS --max-time 5 http://127.0.0.1:8080/jwks.json; }
answered_by() { # answered_by IP [FROM_LINE]: request lines (after FROM_LINE) this instance answered
  balancer_log | tail -n +"$((${2:-0} + 1))" | awk -v ip="$1" '$4 ~ "^" ip ":" && $5 != "-1"' | wc -l
}
both_answer() { [ "$(answered_by "$(ip_of "${instances[0]}")" "$@")" -gt 0 ] && [ "$(answered_by "$(ip_of "${instances[1]}")" "$@")" -gt 0 ]; }
same_jwks() {
  local a b
  a=$(jwks_at "${instances[0]}") && b=$(jwks_at "${instances[1]}") && [ -n "$a" ] && [ "$a" = "$b" ] &&
    [ "$(curl -fsS --max-time 5 "http://127.0.0.1:$FIGURE2_SCALE_AS_PORT/jwks.json")" = "$a" ]
}

# -- 3. A to H through the balancer, both instances answering -------------------------------------
cycle_ok() { client_log | a_to_h; }
wait_until 120 "the client's A to H through the balancer" cycle_ok
log "client walked A to H through the balancer:"
client_log | grep -E '^\([A-H]\)' | head -8 | sed 's/^/    /'
running "$client" || fail "the client stopped"
for _ in 1 2 3 4; do
  curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$FIGURE2_SCALE_AS_PORT/.well-known/oauth-authorization-server"
done
wait_until 30 "requests answered by both instances" both_answer
wait_until 30 "the same JWKS at both instances and at the balancer" same_jwks
log "both instances answer through the balancer ($(answered_by "$(ip_of "${instances[0]}")") and $(answered_by "$(ip_of "${instances[1]}")") requests) with the same JWKS"

# -- 4. kill the instance that answered the last refresh ------------------------------------------
token_answers() { balancer_log | awk '$6 == "POST" && $7 == "/token" && $5 == "200"'; }
mark=$(client_log | wc -l)
tokens_before=$(token_answers | wc -l)
refreshed() { client_log | tail -n +"$((mark + 1))" | grep -q '^(G)->(H) refresh 200'; }
wait_until 60 "a refresh through the balancer" refreshed
# HAProxy logs a request once answered: wait for the refresh's line, then read its instance.
logged() { [ "$(token_answers | wc -l)" -gt "$tokens_before" ]; }
wait_until 10 "the balancer's log line of the refresh" logged
last_ip=$(token_answers | awk '{ ip = $4 } END { sub(/:.*/, "", ip); print ip }')
victim= survivor=
for i in "${instances[@]}"; do
  if [ "$(ip_of "$i")" = "$last_ip" ]; then victim=$i; else survivor=$i; fi
done
[ -n "$victim" ] && [ -n "$survivor" ] || fail "no instance has the address $last_ip of the last refresh"
survivor_ip=$(ip_of "$survivor")
mark=$(client_log | wc -l)
bmark=$(balancer_log | wc -l)
log "docker kill $(name_of "$victim") (it answered the last refresh); $(name_of "$survivor") survives"
timeout 30 docker kill "$victim" >/dev/null
after_kill() { client_log | tail -n +"$((mark + 1))" | refresh_without_a; }
wait_until 90 "a refresh after the kill with no new step A" after_kill
running "$client" || fail "the client stopped"
running "$victim" && fail "the killed instance runs again"
client_log | tail -n +"$((mark + 1))" | grep -q '^(A)' && fail "the client went back to step A"
tokens_after=$(balancer_log | tail -n +"$((bmark + 1))" | awk '$6 == "POST" && $7 == "/token"')
[ -n "$tokens_after" ] || fail "no token request through the balancer after the kill"
echo "$tokens_after" | awk -v ip="$survivor_ip" '$4 !~ "^" ip ":" || $5 != "200" { bad = 1 } END { exit bad }' ||
  { echo "$tokens_after" >&2; fail "a token request after the kill was not answered 200 by the survivor"; }
log "after the kill, with the refresh token of before (token requests: $(echo "$tokens_after" | wc -l), all 200 from the survivor):"
client_log | tail -n +"$((mark + 1))" | grep -E '^\([A-H]\)|^client:' | head -6 | sed 's/^/    /'

log "docker start $(name_of "$victim"): it rejoins"
timeout 60 docker start "$victim" >/dev/null
wait_until 60 "the restarted instance healthy" healthy "$victim"
bmark=$(balancer_log | wc -l)
rejoined() {
  curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$FIGURE2_SCALE_AS_PORT/.well-known/oauth-authorization-server" &&
    [ "$(answered_by "$(ip_of "$victim")" "$bmark")" -gt 0 ]
}
wait_until 60 "the balancer sending requests to the restarted instance" rejoined
wait_until 30 "the same JWKS at both instances after the restart" same_jwks

# -- 5. the conformance catalogue in remote mode, through the balancer ----------------------------
check() { # check NAME ARGS...: figure2 check in a container on the stack's network
  local name=$1
  shift
  timeout 400 docker run --rm --network "$net" \
    -v "$PWD/target/release/figure2:/usr/local/bin/figure2:ro" -v "$PWD/scripts:/figure2-scripts:ro" \
    --entrypoint figure2 "$FIGURE2_IMAGE" check --issuer http://balancer:8080 \
    --client-id demo-client --client-secret demo-secret --scope "read write" \
    --resource http://resource-server-scaled:8081/resource/read \
    --insufficient-scope-url http://resource-server-scaled:8081/resource/admin \
    --max-wait 10 --format table "$@" 2>/dev/null | tee "$work/check-$name.txt" | sed 's/^/    /'
  local last
  last=$(tail -n 1 "$work/check-$name.txt")
  case "$last" in
    *" 0 failed,"*) ;;
    *) fail "remote conformance ($name) through the balancer: $last" ;;
  esac
}
bmark=$(balancer_log | wc -l)
log "figure2 check --issuer http://balancer:8080 (password grant)"
check password --other-client-id other-client --other-client-secret other-secret \
  --username alice --password alice-password
log "figure2 check --issuer http://balancer:8080 --token-command (authorization-code login with curl)"
check token-command --token-command "bash /figure2-scripts/token-command-authcode.sh"
both_answer "$bmark" || fail "the conformance checks did not reach both instances"
log "conformance through the balancer: $(answered_by "$(ip_of "${instances[0]}")" "$bmark") and $(answered_by "$(ip_of "${instances[1]}")" "$bmark") requests answered by the two instances"
running "$client" || fail "the client stopped"

log "all assertions passed"
