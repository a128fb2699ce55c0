#!/usr/bin/env bash
# A third-party DPoP client against Figure2 (RFC 9449): oauth4webapi (npm, pinned in
# interop/dpop/package.json and its lock file) runs the code flow with PKCE as a public
# client, binds its tokens to an ES256 key, uses the resource server with DPoP proofs,
# watches a thief with the refresh token and another key get invalid_grant, and refreshes.
# Both servers require DPoP nonces (§8, §9), so the client's nonce handling runs too.
# Standalone binaries on loopback; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

AS_PORT=${AS_PORT:-18280}
RS_PORT=${RS_PORT:-18281}
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh

command -v node >/dev/null && command -v npm >/dev/null || { echo "FAIL: node and npm are needed" >&2; exit 1; }
(cd interop/dpop && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
cargo build --release -q -p figure2-authorization-server -p figure2-resource-server

AS_CONFIG="$work/dpop.toml"
sed -e 's/^dpop_nonce = false$/dpop_nonce = true/' config/demo.toml >"$AS_CONFIG"
grep -q '^dpop_nonce = true$' "$AS_CONFIG"
RS_ARGS="--dpop-nonce"
start_servers 300

if ! timeout 120 node interop/dpop/refresh.mjs "$AS" "$RS/resource/read"; then
  echo "FAIL: oauth4webapi DPoP interop" >&2
  tail -20 "$work"/as.log "$work"/rs.log >&2
  exit 1
fi
