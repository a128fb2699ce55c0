#!/usr/bin/env bash
# Starts a local PostgreSQL for Figure2's PostgreSQL tests, scenarios and benchmarks:
# Debian's `postgresql` package (installed if missing), its default cluster, a role and a
# database `figure2` on 127.0.0.1:5432. Prints the URL to export, e.g.
#   export FIGURE2_TEST_POSTGRES=$(bash scripts/postgres-up.sh)
# Idempotent: a running cluster, an existing role or database are left as they are.
set -euo pipefail
log() { echo "postgres-up: $*" >&2; }
if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  log "installing Debian's postgresql"
  apt-get update >&2
  # Without an init system the package's own start attempt may fail; this script
  # creates and starts the cluster itself below, so only the binaries must be there.
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2 || log "apt-get reported an error; checking what was installed"
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { log "PostgreSQL did not install"; exit 1; }
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  log "creating cluster $version/main"
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  log "starting cluster $version/main"
  # Many connections: several instances' pools and the 100-way race tests at once.
  pg_ctlcluster "$version" main start -o "-c max_connections=300" >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
for _ in $(seq 1 50); do
  as_postgres psql -p "$port" -Atqc "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.2
done
if [ "$(as_postgres psql -p "$port" -Atqc "SELECT 1 FROM pg_roles WHERE rolname = 'figure2'")" != 1 ]; then
  # CREATEDB: the tests make a schema each (see crates/authorization-server/tests/it/postgres.rs).
  as_postgres psql -p "$port" -qc "CREATE ROLE figure2 LOGIN PASSWORD 'figure2' CREATEDB" >&2
fi
if [ "$(as_postgres psql -p "$port" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'figure2'")" != 1 ]; then
  as_postgres createdb -p "$port" -O figure2 figure2 >&2
fi
echo "postgres://figure2:figure2@127.0.0.1:$port/figure2"
