/** The retention purge, started by the retention Schedule. */

export interface PurgeCounts {
  tenants: number;
  messages: number;
  conversations: number;
  sandbox_messages: number;
  jobs: number;
  /** Outbound events (and their deliveries) past the tenant's period or EVENT_KEEP_DAYS, once settled. */
  events: number;
}

export type RetentionPurgeWorkflow = () => Promise<PurgeCounts>;
