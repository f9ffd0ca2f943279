/** Data Engine shapes that stay on Parley's side; what crosses Temporal is in contracts/data-lookup.ts. */

/**
 * The seed's `data_lookup` job payload. In legacy mode it becomes a `jobs` row for n8n;
 * in native mode `POST /routes/data/lookup` runs it.
 */
export interface DataLookupJob {
  job_type: 'data_lookup';
  tenant_id: string;
  /** The configured query / endpoint name (the seed's "order status" → `order_status`). */
  query: string;
  parameters: Record<string, string>;
  data_source: string;
}
