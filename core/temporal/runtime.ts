import { DefaultLogger, Runtime } from '@temporalio/worker';

let installed = false;

/**
 * The SDK's native runtime, which Parley's workers and its client connections share in a process.
 * It logs every worker state change at INFO; Parley's own logs say what matters, so WARN.
 */
export function installTemporalRuntime(): void {
  if (installed) return;
  installed = true;
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already instantiated in this process (e.g. by @temporalio/testing): keep that one.
  }
}
