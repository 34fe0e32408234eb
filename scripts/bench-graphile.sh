#!/usr/bin/env bash
# graphile-worker on the local PostgreSQL, measured as adapters/benches/job_queue.rs measures our queues
# (20,000 jobs, 16 producers adding one job per call, concurrency 16 with a pool of 16, no-op task), then
# optionally our own job_queue bench right after, in the same session (BENCH_OURS=1).
#
#   scripts/bench-graphile.sh             # graphile-worker 0.16.x (default options), 0.17.x (batching on)
#   BENCH_OURS=1 scripts/bench-graphile.sh   # export CARGO_TARGET_DIR first if you build elsewhere
#
# Needs node 20 and npm (graphile-worker is installed into a temporary directory), and PostgreSQL at
# PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres): each run gets a fresh database
# cpc_bench_graphile, dropped at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
admin="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db_url="${admin%/*}/cpc_bench_graphile"
export JOBS="${JOBS:-20000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

install() { # install <dir> <version spec>
  mkdir -p "$1"
  (cd "$1" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "graphile-worker@$2" pg@8 >/dev/null)
  cp "$here/graphile/bench.js" "$1/"
}

fresh_db() {
  node -e '
    const { Client } = require("pg");
    (async () => {
      const c = new Client({ connectionString: process.argv[1] });
      await c.connect();
      await c.query("DROP DATABASE IF EXISTS cpc_bench_graphile WITH (FORCE)");
      if (process.argv[2] === "create") await c.query("CREATE DATABASE cpc_bench_graphile");
      await c.end();
    })().catch((e) => { console.error(e); process.exit(1); });
  ' "$admin" "$1"
}

install "$work/v016" "~0.16.0"
install "$work/v017" "~0.17.0"
v016="$(cd "$work/v016" && node -p 'require("graphile-worker/package.json").version')"
v017="$(cd "$work/v017" && node -p 'require("graphile-worker/package.json").version')"

echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  uptime:$(uptime | sed 's/.*load average/ load average/')"
echo "| backend | jobs | enqueued/s (16 producers) | worked/s (16 handlers) | end to end jobs/s |"
echo "|---|---:|---:|---:|---:|"
for run in "v016|graphile-worker $v016 (defaults)|" "v017|graphile-worker $v017 (defaults)|" \
           "v017|graphile-worker $v017 (local queue 17, completeJobBatchDelay 0)|batched"; do
  IFS='|' read -r dir label mode <<<"$run"
  (cd "$work/$dir" && fresh_db create && DATABASE_URL="$db_url" node bench.js "$label" $mode)
  echo "  (after: $(uptime | sed 's/.*load average/load average/'))" >&2
done
(cd "$work/v016" && fresh_db drop)

if [[ "${BENCH_OURS:-0}" == 1 ]]; then
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  uptime:$(uptime | sed 's/.*load average/ load average/')"
  (cd "$here/.." && cargo bench -p cpc-adapters --features worker,redis,diesel,memory --bench job_queue 2>/dev/null)
  echo "  (after: $(uptime | sed 's/.*load average/load average/'))"
fi
