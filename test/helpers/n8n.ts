import assert from 'node:assert/strict';

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
