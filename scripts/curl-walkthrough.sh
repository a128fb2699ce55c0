#!/usr/bin/env bash
# The README's curl walk-through, runnable: starts the standalone authorization server and
# resource server as separate processes on loopback, then plays Figure 2 with curl:
# password grant (A/B), resource call (C/D), refresh (G/H), resource call with the new
# token (C/D). Short lifetimes make the old access token expire for real (E/F).
# Exits non-zero if any answer is not the expected one. Stops the servers itself.
set -euo pipefail
cd "$(dirname "$0")/.."

AS_PORT=${AS_PORT:-18080}
RS_PORT=${RS_PORT:-18081}
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh

cargo build --release -q -p figure2-authorization-server -p figure2-resource-server
start_servers 2

field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
expect() { # expect WANT GOT WHAT
  if [ "$1" != "$2" ]; then echo "FAIL: $3: expected $1, got $2" >&2; tail -20 "$work"/*.log >&2; exit 1; fi
  echo "ok: $3"
}

echo "(A) password grant"
b=$(curl -s -u demo-client:demo-secret -d grant_type=password -d username=alice \
  -d password=alice-password --data-urlencode 'scope=read write' "$AS/token")
echo "(B) $b" | cut -c1-160
at=$(echo "$b" | field access_token)
rt=$(echo "$b" | field refresh_token)
[ -n "$at" ] && [ -n "$rt" ] || { echo "FAIL: no tokens" >&2; exit 1; }

echo "(C) resource call"
code=$(curl -s -o "$work/d.json" -w '%{http_code}' -H "Authorization: Bearer $at" "$RS/resource/read")
expect 200 "$code" "(D) protected resource"

sleep 2.1 # the access token lived 2 seconds (--access-token-lifetime 2)
echo "(E) resource call with the expired token"
challenge=$(curl -s -o /dev/null -D - -H "Authorization: Bearer $at" "$RS/resource/read" | tr -d '\r' | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: //p')
echo "(F) WWW-Authenticate: $challenge"
case "$challenge" in *'error="invalid_token"'*) echo "ok: (F) invalid_token" ;; *) echo "FAIL: (F)" >&2; exit 1 ;; esac

echo "(G) refresh"
h=$(curl -s -u demo-client:demo-secret -d grant_type=refresh_token -d "refresh_token=$rt" "$AS/token")
echo "(H) $h" | cut -c1-160
at2=$(echo "$h" | field access_token)
rt2=$(echo "$h" | field refresh_token)
[ -n "$at2" ] && [ "$rt2" != "$rt" ] || { echo "FAIL: no rotated tokens" >&2; exit 1; }

echo "(C) resource call with the new token"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $at2" "$RS/resource/read")
expect 200 "$code" "(D) protected resource again"

echo "replay of the rotated refresh token"
code=$(curl -s -o "$work/replay.json" -w '%{http_code}' -u demo-client:demo-secret \
  -d grant_type=refresh_token -d "refresh_token=$rt" "$AS/token")
expect 400 "$code" "replay refused"
expect invalid_grant "$(field error <"$work/replay.json")" "replay is invalid_grant"
echo "walk-through passed"
