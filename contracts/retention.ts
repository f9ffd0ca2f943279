/** The retention purge, started by the retention Schedule. */

export interface PurgeCounts {
  tenants: number;
  messages: number;
  conversations: number;
  sandbox_messages: number;
  jobs: number;
}

export type RetentionPurgeWorkflow = () => Promise<PurgeCounts>;
