# Sourced by the scripts that run Figure2's standalone servers as separate processes.
# start_servers ACCESS_TOKEN_LIFETIME: starts the authorization server (demo config, a
# fresh SQLite file) on $AS_PORT and the resource server on $RS_PORT, waits (bounded) for
# both health checks, and stops both when the script exits. Sets $AS, $RS and $work.
# $AS_CONFIG (default config/demo.toml) and $RS_ARGS (extra resource-server flags) adjust them.

AS_PORT=${AS_PORT:-18080}
RS_PORT=${RS_PORT:-18081}
AS=http://127.0.0.1:$AS_PORT
RS=http://127.0.0.1:$RS_PORT
work=$(mktemp -d)

stop_servers() {
  kill "${as_pid:-}" "${rs_pid:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop_servers EXIT

start_servers() {
  ./target/release/authorization-server --config "${AS_CONFIG:-config/demo.toml}" --issuer "$AS" --listen "127.0.0.1:$AS_PORT" \
    --database "$work/figure2.db" --access-token-lifetime "$1" >"$work/as.log" 2>&1 &
  as_pid=$!
  # shellcheck disable=SC2086
  ./target/release/resource-server --issuer "$AS" --listen "127.0.0.1:$RS_PORT" ${RS_ARGS:-} >"$work/rs.log" 2>&1 &
  rs_pid=$!
  for _ in $(seq 1 100); do
    curl -fs "$AS/health" >/dev/null 2>&1 && curl -fs "$RS/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "FAIL: the servers did not come up" >&2
  tail -20 "$work"/*.log >&2
  return 1
}
