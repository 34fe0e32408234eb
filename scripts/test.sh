#!/usr/bin/env bash
# The project's one test command (also what CI runs via .ci/run):
#
#   ./scripts/test.sh                  # services + fmt, clippy, doc, nextest, doc tests
#   ./scripts/test.sh --services-only  # just make PostgreSQL/Redis ready and print the env
#   SKIP_SERVICES=1 ./scripts/test.sh  # services are managed elsewhere; don't install/start
#
# By default it installs (apt) and starts PostgreSQL and Redis on 127.0.0.1 when
# they are missing or down, so it works as root on a fresh Debian/Ubuntu box.
set -euo pipefail

cd "$(dirname "$0")/.."

SERVICES_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --services-only) SERVICES_ONLY=1 ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

STEP="setup"
# Always report the total elapsed time (and the failing step, if any).
finish() {
  local rc=$?
  if [ "$rc" -eq 0 ]; then echo "==> OK (${SECONDS}s total)"; else echo "==> FAILED during: $STEP (exit $rc, ${SECONDS}s total)" >&2; fi
}
trap finish EXIT
step() { STEP="$*"; printf '\n==> %s\n' "$*"; }
die() { echo "error: $*" >&2; exit 1; }

# Privileged helpers: plain when root, sudo otherwise. `cd /` avoids psql's
# "could not change directory" noise when running as postgres.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else (cd / && sudo -u postgres "$@"); fi
}

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_HOST=127.0.0.1 REDIS_PORT=6379
export PGCONNECT_TIMEOUT=5
pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
redis_up() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
# -w: never prompt for a password; -X: ignore ~/.psqlrc.
pg_sql() { psql -w -X -q -tA -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@"; }

# wait_for NAME HINT CMD...: poll CMD for up to 30 s, else fail with HINT.
wait_for() {
  local name=$1 hint=$2 _
  shift 2
  for _ in $(seq 30); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  die "$name is not answering after 30 s. $hint"
}

ensure_services() {
  step "services: PostgreSQL on $PG_HOST:$PG_PORT, Redis on $REDIS_HOST:$REDIS_PORT"

  # 1. Install what is missing (one apt-get update, one install).
  local tool missing=0
  for tool in pg_isready psql pg_ctlcluster redis-server redis-cli; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  if [ "$missing" -eq 1 ]; then
    command -v apt-get >/dev/null 2>&1 ||
      die "PostgreSQL/Redis tools are missing and apt-get is unavailable; install them or set SKIP_SERVICES=1."
    echo "installing postgresql and redis-server with apt"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql redis-server
  fi

  # 2. Start what is not running (never restarts a running server).
  if ! pg_up; then
    local versions=(/etc/postgresql/*/) ver
    ver=$(basename "${versions[0]}") # first installed version, like `ls | head -1`
    echo "starting PostgreSQL $ver/main"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  wait_for PostgreSQL "Check 'pg_lsclusters' and /var/log/postgresql/, or start it yourself: pg_ctlcluster --skip-systemctl-redirect <version> main start" pg_up

  if ! redis_up; then
    echo "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  wait_for Redis "See /var/log/redis/ci.log, or start it yourself: redis-server --daemonize yes --bind $REDIS_HOST --port $REDIS_PORT" redis_up

  # 3. Passwordless TCP login as `postgres` (fresh installs use peer/scram):
  #    prepend trust lines for loopback to pg_hba.conf (first match wins) and reload.
  if ! pg_sql -d postgres -c 'select 1' >/dev/null 2>&1; then
    local hba tmp
    hba=$(as_postgres psql -X -p "$PG_PORT" -tAc 'show hba_file')
    echo "enabling trust auth for 127.0.0.1/32 and ::1/128 in $hba"
    tmp=$(mktemp)
    { printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'; as_root cat "$hba"; } >"$tmp"
    as_root tee "$hba" <"$tmp" >/dev/null # rewrite in place: keeps owner and mode
    rm -f "$tmp"
    as_postgres psql -X -q -p "$PG_PORT" -tAc 'select pg_reload_conf()' >/dev/null
    pg_sql -d postgres -c 'select 1' >/dev/null ||
      die "PostgreSQL still refuses passwordless TCP login as 'postgres'; set 'trust' for 127.0.0.1/32 in $hba."
  fi

  # 4. The test database.
  if [ "$(pg_sql -d postgres -c "select 1 from pg_database where datname = 'test'")" != 1 ]; then
    echo "creating database 'test'"
    pg_sql -d postgres -c 'create database test'
  fi
  echo "PostgreSQL and Redis are ready"
}

[ "${SKIP_SERVICES:-0}" = 1 ] || ensure_services

# Environment for the tests. CPC_REQUIRE_SERVERS=1: an unreachable server fails a test, never skips it.
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export CPC_REQUIRE_SERVERS=1
printf 'DATABASE_URL=%s\nREDIS_URL=%s\nCPC_REQUIRE_SERVERS=%s\n' "$DATABASE_URL" "$REDIS_URL" "$CPC_REQUIRE_SERVERS"
[ "$SERVICES_ONLY" -eq 0 ] || exit 0

# Disk: a build of every test target takes about 4 GB (7 GB with incremental caches), and the private servers write under /tmp. A full disk
# shows up as odd test failures ("No space left on device" from initdb or pg_basebackup), so say so up front.
for dir in "${CARGO_TARGET_DIR:-$PWD}" "${TMPDIR:-/tmp}"; do
  free_mb=$(df -Pm "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [ -n "$free_mb" ]; then
    echo "disk: ${free_mb} MB free for $dir"
    [ "$free_mb" -ge 10240 ] || echo "warning: under 10 GB free for $dir; the build and the private test servers may run out of space" >&2
  fi
done

step "rust tooling"
command -v cargo >/dev/null 2>&1 ||
  die "cargo not found; install Rust: curl https://sh.rustup.rs -sSf | sh -s -- -y"
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

# Every test target: libraries, binaries, integration tests and examples (whose unit tests are ours too).
# Benchmarks are not tests: clippy --all-targets above compiles them, `cargo bench` runs them (docs/BENCHMARKS.md).
# --run-ignored all: #[ignore]d tests run too, so nothing is silently skipped. Doc tests are next.
step "cargo nextest (all test targets, ignored tests included)"
cargo nextest run --workspace --lib --bins --tests --examples --all-features --no-fail-fast --run-ignored all

step "doc tests"
cargo test --workspace --all-features --doc
