// @ts-check
'use strict';
/**
 * One deadline watch per workflow thread instead of a watchdog thread per call into workflow code.
 *
 * The Temporal SDK runs every call into a workflow sandbox (4 to 6 per activation) through
 * `vm` with a `timeout`, so a workflow stuck in a synchronous loop fails its task instead of
 * hanging the worker. Node enforces each such timeout by starting and joining a fresh thread
 * (nodejs/node#47739). On a 2-core machine that was nearly half of the workflow thread's time
 * and the main reason replies queued (bench/inbound.ts, docs/conversations.md "Inside the worker").
 *
 * Loaded with `--require`, because Node runs those preloads in worker threads as well and
 * `--import` ones only in the main thread, and the SDK's workflow threads have no TypeScript
 * loader, hence plain CommonJS. In a workflow thread it drops the timeout from those calls and
 * records in shared memory when the running call started and the timeout it asked for. The
 * process's main thread checks twice a second; a call past its timeout means workflow code that
 * no longer yields, and the worker logs it and exits so that its supervisor restarts it and
 * Temporal hands the workflow task to another worker.
 * `WORKFLOW_WATCHDOG=per-call` keeps Node's own per-call watchdog.
 */
const { getEnvironmentData, isMainThread, setEnvironmentData, threadId } = require('node:worker_threads');
const vm = require('node:vm');

const KEY = 'parley.workflowWatchdog';
const SLOTS = 32;
const CHECK_MS = 500;
/** Exit status of a worker stopped by the watchdog (EX_SOFTWARE). */
const STUCK_EXIT_CODE = 70;

/** @typedef {{ owners: Int32Array, startedAt: Float64Array, timeoutMs: Float64Array }} Shared */

/** @param {SharedArrayBuffer} buffer @returns {Shared} */
function view(buffer) {
  return {
    owners: new Int32Array(buffer, 0, SLOTS),
    startedAt: new Float64Array(buffer, SLOTS * 4, SLOTS),
    timeoutMs: new Float64Array(buffer, SLOTS * 12, SLOTS),
  };
}

/** @param {Shared} shared */
function watch(shared) {
  const timer = setInterval(() => {
    const now = Date.now();
    for (let slot = 0; slot < SLOTS; slot++) {
      const started = shared.startedAt[slot];
      if (started === 0 || now - started <= shared.timeoutMs[slot]) continue;
      clearInterval(timer);
      const line = {
        level: 60,
        time: now,
        pid: process.pid,
        code: 'WORKFLOW_THREAD_STUCK',
        thread: shared.owners[slot],
        runningMs: now - started,
        timeoutMs: shared.timeoutMs[slot],
        msg: 'workflow code ran past its execution timeout without yielding; the worker exits so that it is restarted and the task retried',
      };
      process.stderr.write(`${JSON.stringify(line)}\n`, () => process.exit(STUCK_EXIT_CODE));
      return;
    }
  }, CHECK_MS);
  timer.unref();
}

/** @param {Shared} shared */
function patchThread(shared) {
  let slot = -1;
  for (let i = 0; i < SLOTS && slot < 0; i++) if (Atomics.compareExchange(shared.owners, i, 0, threadId) === 0) slot = i;
  // No free slot (a thread terminated by its owner keeps its slot): keep Node's per-call watchdog.
  if (slot < 0) return;
  process.once('exit', () => {
    shared.startedAt[slot] = 0;
    Atomics.store(shared.owners, slot, 0);
  });
  const original = vm.Script.prototype.runInContext;
  vm.Script.prototype.runInContext = function runInContext(context, options) {
    if (options?.timeout === undefined) return original.call(this, context, options);
    const { timeout, ...rest } = options;
    // A call made from inside another is covered by the outer call's deadline.
    if (shared.startedAt[slot] !== 0) return original.call(this, context, rest);
    shared.timeoutMs[slot] = timeout;
    shared.startedAt[slot] = Date.now();
    try {
      return original.call(this, context, rest);
    } finally {
      shared.startedAt[slot] = 0;
    }
  };
}

if (process.env.WORKFLOW_WATCHDOG !== 'per-call') {
  if (isMainThread) {
    const shared = view(new SharedArrayBuffer(SLOTS * 20));
    // Worker threads get a copy of the environment data; a SharedArrayBuffer stays shared.
    setEnvironmentData(KEY, shared.owners.buffer);
    watch(shared);
  } else {
    const buffer = getEnvironmentData(KEY);
    if (buffer instanceof SharedArrayBuffer) patchThread(view(buffer));
  }
}

/** Workflow threads whose calls the watchdog covers now (0 without the preload). */
function watchedThreads() {
  const buffer = getEnvironmentData(KEY);
  if (!(buffer instanceof SharedArrayBuffer)) return 0;
  return view(buffer).owners.filter((owner) => owner !== 0).length;
}

module.exports = { watchedThreads, STUCK_EXIT_CODE };
