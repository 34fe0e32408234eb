// graphile-worker throughput, measured the way adapters/benches/job_queue.rs measures our queues: JOBS jobs
// added by 16 concurrent producers (one job per call), then worked by one runner with concurrency 16 and a pool
// as large, with a no-op task. Prints one Markdown table row: enqueued/s, worked/s (from the runner's start
// until the jobs table is empty), end to end jobs/s.
//
// Usage: node bench.js <label> [batched]   (env DATABASE_URL, JOBS)
// "batched" turns on graphile-worker's own batching (0.17+: a local queue fetching a batch of jobs, and batched
// job completion); 0.16.x has no such options and ignores them.
"use strict";
const { Pool } = require("pg");
const { run, makeWorkerUtils, Logger } = require("graphile-worker");

// Logging every completed job would cost more than the no-op task: log errors only.
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(message);
});

const label = process.argv[2] || "graphile-worker";
const batched = process.argv[3] === "batched";
const JOBS = Number(process.env.JOBS || 20000);
const PRODUCERS = 16;
const CONCURRENCY = 16;
const url = process.env.DATABASE_URL;

async function main() {
  const producerPool = new Pool({ connectionString: url, max: PRODUCERS });
  producerPool.on("error", (e) => console.error(e));
  producerPool.on("connect", (client) => client.on("error", (e) => console.error(e)));
  const utils = await makeWorkerUtils({ pgPool: producerPool, logger });
  await utils.migrate();
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: PRODUCERS }, async (_, p) => {
      for (let i = p; i < JOBS; i += PRODUCERS) {
        await utils.addJob("noop", { i });
      }
    }),
  );
  const enqueuedIn = Number(process.hrtime.bigint() - started) / 1e9;

  const workerPool = new Pool({ connectionString: url, max: CONCURRENCY });
  workerPool.on("error", (e) => console.error(e));
  workerPool.on("connect", (client) => client.on("error", (e) => console.error(e)));
  let done = 0;
  let finish;
  const allDone = new Promise((resolve) => (finish = resolve));
  const working = process.hrtime.bigint();
  const options = {
    pgPool: workerPool,
    logger,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList: {
      noop: async (payload) => {
        if (typeof payload.i !== "number") throw new Error("bad payload");
        if (++done === JOBS) finish();
      },
    },
  };
  if (batched) {
    options.preset = {
      worker: {
        localQueue: { size: CONCURRENCY + 1 },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    };
  }
  const runner = await run(options);
  await allDone;
  // The last completions (batched ones too): wait until the jobs table is empty.
  for (;;) {
    const { rows } = await producerPool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
    if (rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  const workedIn = Number(process.hrtime.bigint() - working) / 1e9;
  const total = Number(process.hrtime.bigint() - started) / 1e9;
  await runner.stop();
  await utils.release();
  await producerPool.end();
  await workerPool.end();
  const f = (x) => Math.round(x).toString();
  console.log(`| ${label} | ${JOBS} | ${f(JOBS / enqueuedIn)} | ${f(JOBS / workedIn)} | ${f(JOBS / total)} |`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
