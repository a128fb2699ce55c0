# Sourced by scripts/compose-test.sh and scripts/compose-scale-test.sh: the steps both take
# on a Debian bookworm machine with no image registry. The sourcing script sets $PROJECT,
# $BASE_IMAGE, $FIGURE2_IMAGE, $MIRROR, $work, $started and the array $compose_args (the
# arguments after `docker compose`: -p, -f, --profile), then calls, in order:
#   install_packages   docker.io, docker-compose (1.29), debootstrap, curl, a C compiler
#   start_dockerd      dockerd --storage-driver=vfs in a session of its own if none answers
#   base_image         figure2-local/bookworm: debootstrap minbase + docker import (cached)
#   figure2_image      the three binaries built on this host, copied into the base image
# and installs the EXIT trap (cleanup): logs on failure, `down -v`, and stops a dockerd it
# started. KEEP_STACK=1 leaves the stack (and that dockerd) running after a success.

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
  if [ $rc -eq 0 ]; then log "$PROJECT passed"; else echo "$PROJECT FAILED (exit $rc)" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# -- packages, and which compose: sets $compose (the full command line prefix) ----------------
install_packages() {
  local need=()
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
  compose=("${compose_cmd[@]}" "${compose_args[@]}")
  log "compose: $("${compose_cmd[@]}" version 2>/dev/null | head -1)"
}

start_dockerd() {
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
}

base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "$BASE_IMAGE exists: no debootstrap"
    return
  fi
  log "debootstrap bookworm (minbase, curl, ca-certificates) from $MIRROR"
  local t
  t=$(date +%s)
  timeout 900 debootstrap --variant=minbase --include=curl,ca-certificates bookworm "$work/rootfs" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | timeout 300 docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/bash"]' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$work/rootfs"
  log "$BASE_IMAGE imported ($(($(date +%s) - t)) s for debootstrap and import)"
}

figure2_image() {
  log "cargo build --release (the three binaries, on this host)"
  local t
  t=$(date +%s)
  timeout 1000 cargo build --release -q -p figure2-authorization-server -p figure2-resource-server -p figure2-client
  rm -rf "$work/context"
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
}

# -- helpers for the assertions ------------------------------------------------------------------
# A/B, C/D, E/F invalid_token, G/H refresh 200, C/D 200: Figure 2 end to end (client log on stdin).
a_to_h() {
  awk '
    s == 0 && /^\(A\)->\(B\) grant 200/ { s = 1; next }
    s == 1 && /^\(C\)->\(D\) .* 200$/ { s = 2; next }
    s == 2 && /^\(E\)->\(F\) .* 401 invalid_token$/ { s = 3; next }
    s == 3 && /^\(G\)->\(H\) refresh 200/ { s = 4; next }
    s == 4 && /^\(C\)->\(D\) .* 200$/ { s = 5; exit }
    END { exit s == 5 ? 0 : 1 }'
}
# G/H refresh 200 then C/D 200, and no step A at all (client log on stdin).
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
