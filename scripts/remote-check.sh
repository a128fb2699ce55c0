#!/usr/bin/env bash
# Remote mode of the conformance catalogue, for real: starts Figure2's standalone
# authorization server and resource server as separate processes on loopback with short
# lifetimes, and runs `figure2 check` against them over real HTTP with the real clock,
# as anyone would against their own servers. Then runs `figure2 check-client` against
# the `client` binary as an external program. Fails if any check fails. Bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

AS_PORT=${AS_PORT:-18180}
RS_PORT=${RS_PORT:-18181}
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh

cargo build --release -q -p figure2-authorization-server -p figure2-resource-server -p figure2-client -p figure2
start_servers 3

echo "== figure2 check against $AS and $RS"
timeout 300 ./target/release/figure2 check --issuer "$AS" \
  --client-id demo-client --client-secret demo-secret \
  --other-client-id other-client --other-client-secret other-secret \
  --username alice --password alice-password --scope "read write" \
  --resource "$RS/resource/read" --insufficient-scope-url "$RS/resource/admin" \
  --max-wait 10 --format table 2>/dev/null | tee "$work/report.txt"
last=$(tail -n 1 "$work/report.txt")
case "$last" in
  *" 0 failed,"*) ;;
  *) echo "FAIL: remote conformance: $last" >&2; tail -20 "$work"/as.log >&2; exit 1 ;;
esac

echo "== figure2 check --token-command (tokens from an authorization-code login driven with curl)"
timeout 300 ./target/release/figure2 check --issuer "$AS" \
  --client-id demo-client --client-secret demo-secret \
  --token-command "bash scripts/token-command-authcode.sh" --scope "read write" \
  --resource "$RS/resource/read" --insufficient-scope-url "$RS/resource/admin" \
  --max-wait 10 --format table 2>/dev/null | tee "$work/report-token-command.txt"
last=$(tail -n 1 "$work/report-token-command.txt")
case "$last" in
  *" 0 failed,"*) ;;
  *) echo "FAIL: remote conformance with --token-command: $last" >&2; exit 1 ;;
esac

echo "== figure2 check-client -- target/release/client (the client binary as an external program)"
timeout 600 ./target/release/figure2 check-client --format table --output-dir "$work/check-client" -- ./target/release/client --contract | tee "$work/client.txt"
last=$(tail -n 1 "$work/client.txt")
case "$last" in
  *" 0 failed,"*) ;;
  *) echo "FAIL: client conformance: $last" >&2; exit 1 ;;
esac
echo "remote conformance passed"
