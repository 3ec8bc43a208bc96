#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis the tests use answer on 127.0.0.1
# (5432 and 6379). Where none answers, a throwaway one is installed from
# Debian's packages and started under /tmp. Also drops databases left over by
# interrupted test runs (see below).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

PG_PORT=${GATEHOUSE_TEST_POSTGRES_PORT:-5432}
PG_URL=${GATEHOUSE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:$PG_PORT/postgres}

pg_answers() { command -v psql >/dev/null 2>&1 && psql "$PG_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; }

if ! pg_answers; then
  echo "test-services: no PostgreSQL answers at $PG_URL; starting a throwaway one"
  command -v psql >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  dir=/tmp/gatehouse-test-pg
  rm -rf "$dir" && mkdir -p "$dir"
  chown postgres: "$dir" 2>/dev/null || true
  run_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  run_pg "$bin/initdb -D $dir/data -U postgres --auth=trust >/dev/null"
  run_pg "$bin/pg_ctl -D $dir/data -l $dir/log -o '-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1' -w start >/dev/null"
  for _ in $(seq 1 30); do pg_answers && break; sleep 1; done
  pg_answers || { echo "test-services: PostgreSQL did not start; see $dir/log" >&2; exit 1; }
fi

# tests/faults.rs runs a private PostgreSQL server (stopped and restarted
# under the control plane): it needs the server's binaries and `runuser`.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
command -v runuser >/dev/null 2>&1 || apt_install util-linux

# Databases of test runs that were killed before they could clean up: only
# those the test harness made (marked with its process id and this machine's
# boot id) and whose process is gone, so a test run in progress, another
# machine's on a shared server, or anyone else's database, is kept.
boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)
psql "$PG_URL" -qtAF ' ' -c "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE 'gh\_test\_%'" |
  while read -r db mark; do
    case "$mark" in "gatehouse-test pid="*) ;; *) continue ;; esac
    # Marks from before the boot id was added name this machine's runs.
    case "$mark" in *" boot="*) [ "${mark##* boot=}" = "$boot" ] || continue ;; esac
    pid=${mark#gatehouse-test pid=}
    pid=${pid%% *}
    case "$pid" in '' | *[!0-9]*) continue ;; esac
    # Gone when the kernel has no such process (whoever owns it, and in any
    # locale); a reused pid only keeps a database a while longer.
    if [ ! -e "/proc/$pid" ]; then
      psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    fi
  done

redis_answers() { command -v redis-cli >/dev/null 2>&1 && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
if ! redis_answers; then
  echo "test-services: no Redis answers on 127.0.0.1:6379; starting a throwaway one"
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/gatehouse-test-redis.log
  for _ in $(seq 1 30); do redis_answers && break; sleep 0.5; done
  redis_answers || { echo "test-services: Redis did not start" >&2; exit 1; }
fi
# The rate-limit tests start (and kill) a Redis of their own.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
echo "test-services: PostgreSQL and Redis answer"
