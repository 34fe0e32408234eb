#!/usr/bin/env bash
# Instructions per operation, the library against the bare crates, counted by callgrind: a count of executed
# instructions does not move with the machine's load, so a regression in library overhead shows without a quiet
# machine (docs/BENCHMARKS.md, "Instructions per operation").
#
#   scripts/instructions.sh                 # every group
#   scripts/instructions.sh pool cache      # some groups: pool, get, set, find, sqlite-reads, rl (cache = get and set)
#
# Each subject of `adapters/benches/instructions.rs` runs twice under `valgrind --tool=callgrind`, with N1 and N2
# calls of its operation, collecting only in its measured part (the function `measured` on the main thread, which
# runs the calls, the runtime's scheduler and I/O driver and the clients' connection tasks; and tokio's blocking
# threads, where SQLite's work runs), not in the set-up (connecting, seeding, a pool clock's calibration, which
# loops for a wall-clock time). (instructions(N2) - instructions(N1)) / (N2 - N1) is the cost of one call, what
# the measured part costs once per run cancelling out. Prints a markdown table.
#
# Environment: REDIS_URL (default redis://127.0.0.1:6379) for the cache groups; CPC_INSTR_N1 / CPC_INSTR_N2 to
# change the call counts (default 2000 / 6000; pool ten times as many); CPC_INSTR_OUT=DIR keeps the callgrind files
# (DIR/SUBJECT-TASKS-N.out) for callgrind_annotate; CPC_INSTR_RUNS=K runs each subject K times and keeps the
# lowest per-call figure (default 1); CPC_INSTR_EXE=FILE runs an already built bench executable instead of building
# one (a copy of another commit's, to compare before and after in one run).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is needed (Debian: apt-get install valgrind)" >&2; exit 1; }
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(pool get set find sqlite-reads rl)
wants() { local g; for g in "${groups[@]}"; do [ "$g" = "$1" ] || { [ "$g" = cache ] && [[ $1 =~ ^(get|set)$ ]]; } && return 0; done; return 1; }

exe=${CPC_INSTR_EXE:-}
if [ -z "$exe" ]; then
    echo "building the instructions bench (release, line tables)..." >&2
    exe=$(cargo bench -p cpc-adapters --features redis,diesel --bench instructions --no-run --message-format=json \
        | jq -r 'select(.reason == "compiler-artifact" and .target.name == "instructions") | .executable // empty' | tail -1)
fi
[ -x "$exe" ] || { echo "could not find the instructions bench executable" >&2; exit 1; }

out=${CPC_INSTR_OUT:-$(mktemp -d)}
mkdir -p "$out"
runs=${CPC_INSTR_RUNS:-1}

# total SUBJECT N TASKS: the instructions callgrind counted in one whole run.
total() {
    local file="$out/$1-$3-$2.out"
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='instructions::measured' \
        --toggle-collect='tokio::runtime::blocking::pool::Inner::run' \
        --callgrind-out-file="$file" "$exe" --bench "$1" "$2" "$3" >/dev/null 2>"$file.log" \
        || { echo "callgrind run of $1 failed, see $file.log" >&2; exit 1; }
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

# per_call SUBJECT TASKS N1 N2: instructions per call (lowest of $runs measurements).
per_call() {
    local best="" r a b v
    for ((r = 0; r < runs; r++)); do
        a=$(total "$1" "$3" "$2")
        b=$(total "$1" "$4" "$2")
        v=$(( (b - a) / ($4 - $3) ))
        if [ -z "$best" ] || [ "$v" -lt "$best" ]; then best=$v; fi
    done
    echo "$best"
}

n1=${CPC_INSTR_N1:-2000}
n2=${CPC_INSTR_N2:-6000}
declare -A cost

# measure TASKS N1 N2 SUBJECT...: fills cost[SUBJECT/TASKS].
measure() {
    local tasks=$1 a=$2 b=$3 s
    shift 3
    for s in "$@"; do
        [ -n "${cost[$s/$tasks]:-}" ] && continue
        echo "  $s, $tasks task(s)..." >&2
        cost[$s/$tasks]=$(per_call "$s" "$tasks" "$a" "$b")
    done
}

# row OPERATION TASKS OURS BASELINE LABEL
row() {
    local ours=${cost[$3/$2]} bare=${cost[$4/$2]}
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$ours" "$5" "$bare" \
        "$(awk -v o="$ours" -v b="$bare" 'BEGIN { printf "%.2fx", o / b }')"
}

wants pool && measure 1 $((n1 * 10)) $((n2 * 10)) pool-cpc pool-bb8
for op in get set; do
    if wants $op; then
        for tasks in 1 64; do
            measure $tasks "$n1" "$n2" $op-cpc $op-multiplexed $op-manager $op-fred
        done
    fi
done
if wants rl; then
    for tasks in 1 64; do
        measure $tasks "$n1" "$n2" rl-token-cpc rl-sliding-cpc rl-sliding-script get-multiplexed
    done
fi
if wants find; then
    for tasks in 1 16; do
        measure $tasks "$n1" "$n2" find-cpc find-rusqlite find-diesel find-diesel-blocking find-rusqlite-sync
    done
fi
# sqlite-reads: the repository's other SQLite reads against the same statement in rusqlite through the same pool
# (issue 20), 1 task. reads[OP] is the table's label for subjects OP-cpc and OP-rusqlite.
declare -A reads=([exists]="SQLite exists" [email]="SQLite find_by_email" [username]="SQLite find_by_username (select, 1 row)"
    [count]="SQLite count (one filter)" [page]="SQLite find_page (keyset, 20 of 21 rows)")
read_ops=(exists email username count page)
if wants sqlite-reads; then
    for op in "${read_ops[@]}"; do
        measure 1 "$n1" "$n2" $op-cpc $op-rusqlite
    done
fi

echo
echo "Instructions per operation (callgrind, $(date -u +%Y-%m-%d), valgrind $(valgrind --version | sed 's/valgrind-//'))"
echo
echo "| operation | tasks | ours (instructions/op) | baseline | baseline (instructions/op) | ours / baseline |"
echo "|---|---:|---:|---|---:|---:|"
if wants pool; then
    row "pool checkout + return (cpc Pool, metrics on)" 1 pool-cpc pool-bb8 "bare bb8"
fi
for op in get set; do
    wants $op || continue
    for tasks in 1 64; do
        row "cache $op (CacheManager)" $tasks $op-cpc $op-multiplexed "redis-rs MultiplexedConnection"
        row "cache $op (CacheManager)" $tasks $op-cpc $op-manager "redis-rs ConnectionManager"
        row "cache $op (CacheManager)" $tasks $op-cpc $op-fred "fred Client"
    done
done
if wants find; then
    for tasks in 1 16; do
        row "SQLite find_by_id (repository)" $tasks find-cpc find-rusqlite "rusqlite via SqlitePool::interact"
        row "SQLite find_by_id (repository)" $tasks find-cpc find-diesel "raw Diesel, SyncConnectionWrapper (AsyncConnection)"
        row "SQLite find_by_id (repository)" $tasks find-cpc find-diesel-blocking \
            "raw Diesel, sync RunQueryDsl in the wrapper's spawn_blocking"
        row "SQLite find_by_id (repository)" $tasks find-cpc find-rusqlite-sync \
            "rusqlite, one connection, no pool, no thread hop"
    done
fi
if wants rl; then
    for tasks in 1 64; do
        row "rate limit check, token bucket (RedisRateLimiter)" $tasks rl-token-cpc get-multiplexed \
            "plain GET, redis-rs MultiplexedConnection"
        row "rate limit check, sliding window (RedisRateLimiter)" $tasks rl-sliding-cpc get-multiplexed \
            "plain GET, redis-rs MultiplexedConnection"
        row "rate limit check, sliding window (RedisRateLimiter)" $tasks rl-sliding-cpc rl-sliding-script \
            "hand-written sliding log script, one EVALSHA per check (redis-rs MultiplexedConnection)"
    done
fi
if wants sqlite-reads; then
    for op in "${read_ops[@]}"; do
        row "${reads[$op]} (repository)" 1 $op-cpc $op-rusqlite "rusqlite via SqlitePool::interact"
    done
fi
[ -n "${CPC_INSTR_OUT:-}" ] || rm -rf "$out"
