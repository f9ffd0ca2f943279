import { TestWorkflowEnvironment } from '@temporalio/testing';

/** A Temporal dev server for tests, from the installed CLI; never the SDK's download. */
export function startTestTemporal(cli: string, opts: { port?: number; dbFilename?: string } = {}): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: cli },
      ip: '127.0.0.1',
      port: opts.port,
      dbFilename: opts.dbFilename,
      log: { format: 'json', level: 'error' },
      extraArgs: opts.dbFilename ? ['--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal'] : [],
    },
  });
}
