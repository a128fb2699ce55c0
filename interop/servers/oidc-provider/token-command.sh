#!/usr/bin/env bash
# A --token-command for `figure2 check` against interop/servers/oidc-provider: one
# authorization-code login (RFC 6749 §4.1 with PKCE S256, RFC 7636) through
# oidc-provider's development login and consent pages, driven with curl and a cookie jar,
# then the code exchanged at the token endpoint. Prints the RFC 6749 §5.1 token response.
# Refresh tokens come with the offline_access scope and prompt=consent (OpenID Connect
# Core §11): run the checker with --scope "openid offline_access".
set -euo pipefail
: "${FIGURE2_AUTHORIZATION_ENDPOINT:?}" "${FIGURE2_TOKEN_ENDPOINT:?}" "${FIGURE2_CLIENT_ID:?}"
redirect_uri=http://127.0.0.1:8090/callback
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
b64url() { base64 | tr '+/' '-_' | tr -d '=\n'; }
verifier=$(head -c 32 /dev/urandom | b64url)
digest=$(printf '%s' "$verifier" | sha256sum | cut -c1-64)
# shellcheck disable=SC2059
challenge=$(printf "$(printf '%s' "$digest" | sed 's/../\\x&/g')" | b64url)
state=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

# GET the URL, return where it redirects to (absolute).
follow() {
  local to
  to=$(curl -fsS -o /dev/null -b "$jar" -c "$jar" -w '%{redirect_url}' "$@")
  printf '%s' "$to"
}
at=$(follow -G "$FIGURE2_AUTHORIZATION_ENDPOINT" --data-urlencode response_type=code \
  --data-urlencode "client_id=$FIGURE2_CLIENT_ID" --data-urlencode "redirect_uri=$redirect_uri" \
  --data-urlencode "scope=${FIGURE2_SCOPE:-openid offline_access}" --data-urlencode prompt=consent \
  --data-urlencode "state=$state" --data-urlencode "code_challenge=$challenge" \
  --data-urlencode code_challenge_method=S256)
# Development interactions: the login form (any login), then the consent form.
for _ in 1 2 3 4 5 6; do
  case "$at" in
    "$redirect_uri"*) break ;;
    */interaction/*)
      # Each page is a form posted back to its own URL with a hidden prompt name.
      page=$(curl -fsS -b "$jar" -c "$jar" "$at")
      prompt=$(printf '%s' "$page" | sed -n 's/.*name="prompt" value="\([a-z]*\)".*/\1/p' | head -1)
      if [ "$prompt" = login ]; then
        at=$(follow -d prompt=login -d login=alice -d password=alice-password "$at")
      else
        at=$(follow -d "prompt=${prompt:-consent}" "$at")
      fi
      ;;
    *) at=$(follow "$at") ;;
  esac
done
code=$(printf '%s' "$at" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
[ -n "$code" ] || { echo "no code in the redirect: $at" >&2; exit 1; }
curl -sS -u "$FIGURE2_CLIENT_ID:${FIGURE2_CLIENT_SECRET:-}" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$code" \
  --data-urlencode "redirect_uri=$redirect_uri" --data-urlencode "code_verifier=$verifier" \
  "$FIGURE2_TOKEN_ENDPOINT"
