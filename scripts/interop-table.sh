#!/usr/bin/env bash
# The interop table (docs/interop.md), reproduced: installs three real authorization
# servers and four real client libraries from PyPI and npm at the versions pinned under
# interop/, runs `figure2 check` against each server and `figure2 check-client` against
# each client (every client $RUNS times, default 2, and the runs must agree), and
# compares the verdicts with the committed interop/expected.json. Fails if the checker
# crashes (exit status other than 0 or 1, or no JSON report), if a client's runs differ,
# or if any verdict changed (a client whose verdicts changed is first re-measured alone,
# and fails only if the change comes back). Loopback only; bounded in time.
#
#   bash scripts/interop-table.sh            # check against interop/expected.json
#   bash scripts/interop-table.sh --update   # rewrite interop/expected.json and docs/interop.md
#
# Needs python3 with pip and node >= 20 with npm (.ci/run installs them if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

UPDATE=0
[ "${1:-}" = "--update" ] && UPDATE=1
RUNS=${INTEROP_RUNS:-2}
BASE_PORT=${INTEROP_BASE_PORT:-18380}
work=$(mktemp -d)
out=$work/out
mkdir -p "$out/servers" "$out/clients"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== installing the servers and clients (PyPI, npm) at pinned versions"
# --target: a private directory, as scripts/oidc-interop.sh does (no venv, no system site-packages).
timeout 300 python3 -m pip install --quiet --disable-pip-version-check --no-input --target "$work/py" \
  -r interop/servers/authlib/requirements.txt -r interop/servers/django-oauth-toolkit/requirements.txt \
  -r interop/clients/requirements.txt
mkdir "$work/oidc-provider"
cp interop/servers/oidc-provider/{package.json,package-lock.json,server.mjs} "$work/oidc-provider/"
(cd "$work/oidc-provider" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
export PYTHONPATH=$work/py
# FIGURE2_BIN: an already built figure2 (else it is built here).
if [ -n "${FIGURE2_BIN:-}" ]; then
  figure2=$(realpath "$FIGURE2_BIN")
else
  cargo build --release -q -p figure2
  figure2=$PWD/target/release/figure2
fi

start() { # name port command...
  local name=$1 port=$2
  shift 2
  "$@" >"$out/servers/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/.well-known/oauth-authorization-server" && return 0
    curl -fs -o /dev/null "http://127.0.0.1:$port/.well-known/openid-configuration" && return 0
    sleep 0.2
  done
  echo "FAIL: $name did not come up on port $port" >&2
  tail -20 "$out/servers/$name.log" >&2
  exit 1
}
authlib_port=$((BASE_PORT + 1)) dot_port=$((BASE_PORT + 2)) oidc_port=$((BASE_PORT + 3))
start authlib "$authlib_port" python3 interop/servers/authlib/server.py "$authlib_port"
start django-oauth-toolkit "$dot_port" python3 interop/servers/django-oauth-toolkit/server.py "$dot_port"
start oidc-provider "$oidc_port" node "$work/oidc-provider/server.mjs" "$oidc_port"

# Runs the checker (given --format json), keeps its report and the exact command; a
# crash, a time-out or a report that is not JSON fails the script.
measure() { # file command...
  local file=$1 status=0
  shift
  local cmd="${*/#$figure2/figure2}"
  printf '%s\n' "${cmd//$out/\$OUT}" >"$file.cmd"
  timeout 600 "$@" >"$file.json" 2>"$file.stderr" || status=$?
  if [ "$status" -gt 1 ] || ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$file.json" 2>/dev/null; then
    echo "FAIL: the checker crashed or timed out (status $status): $*" >&2
    tail -20 "$file.stderr" >&2
    return 1
  fi
}

echo "== figure2 check against the servers"
common=(--client-id demo-client --client-secret demo-secret --other-client-id other-client
  --other-client-secret other-secret --max-wait 10 --format json)
measure "$out/servers/authlib" "$figure2" check --issuer "http://127.0.0.1:$authlib_port" "${common[@]}" \
  --username alice --password alice-password --client-credentials --scope read \
  --resource "http://127.0.0.1:$authlib_port/resource" --insufficient-scope-url "http://127.0.0.1:$authlib_port/admin"
measure "$out/servers/django-oauth-toolkit" "$figure2" check --issuer "http://127.0.0.1:$dot_port" "${common[@]}" \
  --username alice --password alice-password --scope read \
  --resource "http://127.0.0.1:$dot_port/resource" --insufficient-scope-url "http://127.0.0.1:$dot_port/admin"
measure "$out/servers/oidc-provider" "$figure2" check --issuer "http://127.0.0.1:$oidc_port" "${common[@]}" \
  --token-command "bash interop/servers/oidc-provider/token-command.sh" --scope "openid offline_access"

echo "== figure2 check-client against the client libraries ($RUNS runs each, the clients in parallel)"
# Each client with its library's own early-refresh setting declared to the checker
# (--client-leeway); 60-second catalogue tokens live 6 s at --time-scale 20.
client() { # name run: one check-client run of the named library's adapter
  local name=$1 run=$2 adapter=$1 options=(--client-leeway 0) env=()
  case $name in
    authlib-requests | authlib-httpx) env=(AUTHLIB_LEEWAY=0) ;;
    requests-auth) options=(--client-leeway 1) env=(REQUESTS_AUTH_EARLY_EXPIRY=1) ;;
    # Authlib's default leeway (60 s) with 30-second access tokens: the concurrency checks.
    authlib-httpx-default-leeway)
      adapter=authlib-httpx
      options=(--client-leeway 60 --token-lifetime 30 --only CL-9700-single-flight,CL-6-concurrent-keeps-rotated-token) ;;
  esac
  measure "$out/clients/$name.run$run" env "${env[@]}" "$figure2" check-client --format json --time-scale 20 \
    "${options[@]}" --output-dir "$out/clients/$name.run$run.d" -- python3 "interop/clients/$adapter/client.py"
}
clients=(authlib-requests authlib-httpx requests-oauthlib requests-auth authlib-httpx-default-leeway)
for run in $(seq 1 "$RUNS"); do
  jobs=()
  for name in "${clients[@]}"; do client "$name" "$run" & jobs+=($!); done
  for job in "${jobs[@]}"; do wait "$job"; done
  echo "   run $run done"
done

versions() {
  python3 - <<'PY'
import importlib.metadata as m, json
names = ["Authlib", "Flask", "SQLAlchemy", "django-oauth-toolkit", "Django", "oauthlib",
         "requests-oauthlib", "requests-auth", "requests", "httpx"]
print(json.dumps({n: m.version(n) for n in names}))
PY
}
versions >"$out/versions.json"
node -p "JSON.stringify({'oidc-provider': require('$work/oidc-provider/node_modules/oidc-provider/package.json').version})" \
  >"$out/versions-npm.json"

python3 scripts/interop_table.py collect "$out" "$RUNS" >"$work/results.json"
if [ "$UPDATE" = 0 ]; then
  # A client whose verdicts changed is measured once more, alone (the four ran side by
  # side on a loaded machine and the libraries run on real clocks): a change that comes
  # back fails below; one that does not is reported as a WARN.
  changed=$(python3 scripts/interop_table.py changed-clients interop/expected.json "$work/results.json")
  if [ -n "$changed" ]; then
    for name in $changed; do
      echo "   re-measuring $name alone"
      client "$name" again
    done
    python3 scripts/interop_table.py collect "$out" "$RUNS" >"$work/results.json"
  fi
fi
if [ "$UPDATE" = 1 ]; then
  cp "$work/results.json" interop/expected.json
  python3 scripts/interop_table.py render interop/expected.json interop/notes.toml >docs/interop.md
  echo "updated interop/expected.json and docs/interop.md"
else
  python3 scripts/interop_table.py compare interop/expected.json "$work/results.json"
  python3 scripts/interop_table.py render interop/expected.json interop/notes.toml | diff -u docs/interop.md - \
    || { echo "FAIL: docs/interop.md is not what interop/expected.json renders to" >&2; exit 1; }
  echo "PASS: the interop table is unchanged"
fi
