#!/usr/bin/env bash
# Third-party proof of Figure2's OpenID Connect: two real OpenID Connect client libraries,
# installed from their registries at pinned versions, run against the standalone
# authorization server on loopback (interop/figure2-oidc.toml):
#   - Python Authlib   (PyPI, interop/authlib/requirements.txt)
#   - openid-client v6 (npm,  interop/openid-client/package-lock.json)
# Each discovers Figure2 (/.well-known/openid-configuration), does the code flow with PKCE
# (the script's HTTP client plays the user on the login page), validates the id_token,
# refreshes, validates the refreshed id_token (OpenID Connect Core §12.2), reads userinfo,
# and sees the rotated refresh token refused. Bounded in time; fails if either fails.
# Needs python3 with pip and node >= 20 with npm (.ci/run installs them if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${OIDC_INTEROP_PORT:-18280}
ISSUER=http://127.0.0.1:$PORT
work=$(mktemp -d)
cleanup() {
  kill "${as_pid:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== installing Authlib (PyPI) and openid-client (npm) at pinned versions"
# --target: a private directory, so neither a venv nor the system's site-packages is needed.
timeout 300 python3 -m pip install --quiet --disable-pip-version-check --no-input \
  --target "$work/py" -r interop/authlib/requirements.txt
mkdir "$work/js"
cp interop/openid-client/package.json interop/openid-client/package-lock.json interop/openid-client/rp.mjs "$work/js/"
(cd "$work/js" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)

cargo build --release -q -p figure2-authorization-server
./target/release/authorization-server --config interop/figure2-oidc.toml --issuer "$ISSUER" \
  --listen "127.0.0.1:$PORT" >"$work/as.log" 2>&1 &
as_pid=$!
for _ in $(seq 1 100); do
  curl -fs "$ISSUER/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "$ISSUER/health" >/dev/null || { echo "FAIL: the authorization server did not come up" >&2; cat "$work/as.log" >&2; exit 1; }

status=0
echo "== Authlib $(grep -i '^authlib==' interop/authlib/requirements.txt | cut -d= -f3)"
PYTHONPATH="$work/py" timeout 60 python3 interop/authlib/authlib_rp.py "$ISSUER" || status=1
echo "== openid-client $(node -p "require('$work/js/node_modules/openid-client/package.json').version")"
(cd "$work/js" && timeout 60 node rp.mjs "$ISSUER") || status=1
if [ "$status" -ne 0 ]; then
  echo "FAIL: OpenID Connect interop; authorization server log:" >&2
  tail -30 "$work/as.log" >&2
  exit 1
fi
echo "== scraped after both runs:"
curl -fs "$ISSUER/metrics" | grep -E '^figure2_(token_requests|refresh_outcomes|userinfo_requests)_total'
echo "PASS: Authlib and openid-client interoperate with Figure2"
