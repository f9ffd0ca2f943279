import assert from 'node:assert/strict';
import type { Harness } from './harness.js';

/** What an n8n workflow does against Parley, as a separate HTTP client: poll next-job, reply with messages/send. */
export function simulatedN8n(baseUrl: string) {
  return {
    async pollJob(key: string, waitS = 20) {
      const res = await fetch(`${baseUrl}/queue/next-job?wait=${waitS}`, { headers: { authorization: `Bearer ${key}` } });
      if (res.status === 204) return null;
      assert.equal(res.status, 200);
      return (await res.json()) as { job_id: string; payload: Record<string, any>; status: string };
    },
    async send(key: string, body: Record<string, unknown>) {
      const res = await fetch(`${baseUrl}/messages/send`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as any };
    },
  };
}

/** A tenant in `legacy_n8n` mode: its turns become jobs that n8n answers within `timeoutS`. */
export async function legacyTenant(h: Harness, fallback: string, timeoutS: number) {
  const t = await h.createTenant(undefined, { fallback_message: fallback });
  const res = await h.request('PATCH', `/routes/tenants/${t.id}`, {
    key: t.key,
    body: { mode: 'legacy_n8n', legacy_reply_timeout_s: timeoutS },
  });
  assert.equal(res.status, 200);
  return t;
}
