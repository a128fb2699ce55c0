#!/usr/bin/env bash
# Builds the minimal authorization-server image (docker/Dockerfile.minimal: FROM scratch,
# the stripped release binary and the shared libraries it links, nothing else), prints its
# size, and measures `docker run` to the first answered request (GET /health) a few times.
# Needs a running docker daemon (scripts/compose-test.sh shows how to start one with
# --storage-driver=vfs). Host network and loopback only. The figures go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${FIGURE2_MINIMAL_IMAGE:-figure2-local/authorization-server:minimal}
RUNS=${RUNS:-10}
PORT=${PORT:-18380}
work=$(mktemp -d)
cid=
cleanup() {
  [ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p figure2-authorization-server
bin=target/release/authorization-server
root=$work/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/figure2" "$work/data"
mkdir -m 1777 "$root/tmp"
objcopy --strip-debug "$bin" "$root/usr/local/bin/authorization-server"
# The libraries the binary links (and the dynamic loader), at the paths it looks for them.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp config/demo.toml "$root/etc/figure2/demo.toml"
cp docker/Dockerfile.minimal "$work/Dockerfile"
docker build -q -t "$IMAGE" "$work" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }'))"
echo "  binary (debug info stripped): $(stat -c %s "$root/usr/local/bin/authorization-server") bytes"

# docker run → first 200 from /health, RUNS times.
times=()
for _ in $(seq 1 "$RUNS"); do
  start=$(date +%s%N)
  cid=$(docker run -d --network host "$IMAGE" --listen "127.0.0.1:$PORT" --issuer "http://127.0.0.1:$PORT" \
    --database :memory:)
  ok=
  for _ in $(seq 1 2000); do
    if curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.005
  done
  end=$(date +%s%N)
  [ -n "$ok" ] || { docker logs "$cid" >&2; echo "FAIL: the container did not answer" >&2; exit 1; }
  # The container really serves OAuth: the RFC 8414 metadata names its issuer.
  curl -fs "http://127.0.0.1:$PORT/.well-known/oauth-authorization-server" | grep -q "\"issuer\":\"http://127.0.0.1:$PORT\""
  docker rm -f "$cid" >/dev/null
  cid=
  times+=($(((end - start) / 1000000)))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "docker run to first answered request: median ${median} ms over $RUNS runs (all: $(echo $sorted | tr '\n' ' '))"
