#!/usr/bin/env bash
# A --token-command for `figure2 check`: one authorization-code login (RFC 6749 §4.1, with
# PKCE S256, RFC 7636) driven with curl against Figure2's own /authorize page, then the
# code exchanged at the token endpoint. Prints the RFC 6749 §5.1 token response (JSON).
#
#   figure2 check --issuer http://127.0.0.1:8080 --client-id demo-client --client-secret demo-secret \
#       --token-command 'bash scripts/token-command-authcode.sh' --scope "read write" ...
#
# The checker sets FIGURE2_AUTHORIZATION_ENDPOINT, FIGURE2_TOKEN_ENDPOINT, FIGURE2_CLIENT_ID,
# FIGURE2_CLIENT_SECRET and FIGURE2_SCOPE. The resource owner and the registered redirect URI
# come from LOGIN_USERNAME (alice), LOGIN_PASSWORD (alice-password) and REDIRECT_URI
# (demo-client's http://127.0.0.1:8090/callback; nothing needs to listen there: the code is
# read from the redirect's Location). Another server's login page needs its own form fields
# here; the rest (PKCE, state, the code exchange) is the same for every server.
set -euo pipefail

: "${FIGURE2_AUTHORIZATION_ENDPOINT:?the metadata advertises no authorization_endpoint}"
: "${FIGURE2_TOKEN_ENDPOINT:?}" "${FIGURE2_CLIENT_ID:?}"
username=${LOGIN_USERNAME:-alice}
password=${LOGIN_PASSWORD:-alice-password}
redirect_uri=${REDIRECT_URI:-http://127.0.0.1:8090/callback}

urlencode() {
  local LC_ALL=C s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in [a-zA-Z0-9.~_-]) out+=$c ;; *) out+=$(printf '%%%02X' "'$c") ;; esac
  done
  printf '%s' "$out"
}
b64url() { base64 | tr '+/' '-_' | tr -d '=\n'; }

# RFC 7636 §4.1–4.2: a 256-bit verifier and its S256 challenge (sha256sum + printf, no openssl).
verifier=$(head -c 32 /dev/urandom | b64url)
digest=$(printf '%s' "$verifier" | sha256sum | cut -c1-64)
# shellcheck disable=SC2059
challenge=$(printf "$(printf '%s' "$digest" | sed 's/../\\x&/g')" | b64url)
state=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

query="response_type=code&client_id=$(urlencode "$FIGURE2_CLIENT_ID")&redirect_uri=$(urlencode "$redirect_uri")"
query+="&scope=$(urlencode "${FIGURE2_SCOPE:-}")&state=$state&code_challenge=$challenge&code_challenge_method=S256"

# The login page's form (GET shows it; POST submits it): approve as the resource owner.
location=$(curl -fsS -o /dev/null -w '%{redirect_url}' \
  --data-urlencode "request=$query" --data-urlencode "username=$username" \
  --data-urlencode "password=$password" --data-urlencode "decision=approve" \
  "$FIGURE2_AUTHORIZATION_ENDPOINT")
code=$(printf '%s' "$location" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
returned_state=$(printf '%s' "$location" | sed -n 's/.*[?&]state=\([^&]*\).*/\1/p')
if [ -z "$code" ] || [ "$returned_state" != "$state" ]; then
  echo "no code (or the wrong state) in the redirect: $location" >&2
  exit 1
fi

# RFC 6749 §4.1.3: the code for tokens, the client authenticated with HTTP Basic.
curl -sS -u "$FIGURE2_CLIENT_ID:${FIGURE2_CLIENT_SECRET:-}" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$code" \
  --data-urlencode "redirect_uri=$redirect_uri" --data-urlencode "code_verifier=$verifier" \
  "$FIGURE2_TOKEN_ENDPOINT"
