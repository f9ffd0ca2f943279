import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  EgressPolicy,
  EgressRefusedError,
  egressFetch,
  egressPolicy,
  installEgressPolicy,
  ownServices,
  readCapped,
  ResponseTimeoutError,
  ResponseTooLargeError,
} from '../core/platform/egress.js';
import { dataSourceSchema } from '../core/data-engine/config.js';
import { ConnectorPools, runQuery } from '../core/data-engine/connectors.js';
import { ApplicationFailure } from '@temporalio/common';
import { chatCompletion, LlmError, llmClient } from '../core/ai/llm.js';
import { providerFetch } from '../core/providers/http.js';
import { fetchBytes } from '../core/providers/meta.js';
import { loadConfig } from '../core/platform/config.js';
import { createHarness, type Harness } from './helpers/harness.js';

/** An internal service (127.0.0.2 is loopback, outside the test allowlist) that counts every request it sees. */
async function listener(
  host: string,
  handler?: http.RequestListener,
): Promise<{ url: string; port: number; hits: number; close(): Promise<void> }> {
  const state = { hits: 0 };
  const server = http.createServer((req, res) => {
    state.hits++;
    if (handler) handler(req, res);
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"secret":"internal"}');
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    get hits() {
      return state.hits;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('containment: egress policy', () => {
  let h: Harness;
  let tenant: { id: string; key: string };
  let internal: Awaited<ReturnType<typeof listener>>;
  let installed: EgressPolicy;

  before(async () => {
    h = await createHarness();
    installed = egressPolicy();
    internal = await listener('127.0.0.2');
    tenant = await h.createTenant();
  });
  after(async () => {
    installEgressPolicy(installed);
    await internal.close();
    await h.close();
  });

  /** The same internal service in every spelling an attacker might try. */
  const hostForms = () => {
    const p = internal.port;
    return [
      `http://127.0.0.2:${p}/`,
      `http://2130706434:${p}/`,
      `http://0177.0.0.2:${p}/`,
      `http://0x7f.0.0.2:${p}/`,
      `http://0x7f000002:${p}/`,
      `http://127.2:${p}/`,
      `http://[::ffff:127.0.0.2]:${p}/`,
      `http://[::ffff:7f00:2]:${p}/`,
      // localhost is 127.0.0.1, allowlisted here: the API port on it is still Parley own.
      `http://localhost:${h.config.PORT}/`,
      'http://[::1]/',
      'http://0.0.0.0/',
      'http://10.1.2.3/',
      'http://192.168.0.1/',
      'http://172.16.0.1/',
      'http://100.64.0.1/',
      'http://169.254.169.254/latest/meta-data/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://[fd00:ec2::254]/',
      'http://[fe80::1]/',
      'http://[fc00::1]/',
      'http://[::7f00:2]/',
      'http://[64:ff9b::7f00:2]/',
      'http://[2002:7f00:2::]/',
      'http://224.0.0.1/',
      'http://255.255.255.255/',
      // Parley's own services: on an allowlisted address, refused by name.
      h.baseUrl + '/',
      `http://${h.config.TEMPORAL_ADDRESS}/`,
      `http://127.0.0.1:${new URL(h.databaseUrl).port || 5432}/`,
    ];
  };

  it('refuses every internal form at configure time with a 400 naming the field (REST, GraphQL, AI, channel)', async () => {
    for (const url of hostForms()) {
      const rest = await h.request('PUT', `/routes/tenants/${tenant.id}/data-sources`, {
        key: tenant.key,
        body: { data_sources: [{ id: 'r', name: 'R', type: 'rest_api', connection: { base_url: url }, endpoints: { e: '/x' } }] },
      });
      assert.equal(rest.status, 400, `rest ${url}: ${JSON.stringify(rest.body)}`);
      assert.match(rest.body.error.message, /data_sources\.0\.connection\.base_url/, url);
      const gql = await h.request('PUT', `/routes/tenants/${tenant.id}/data-sources`, {
        key: tenant.key,
        body: { data_sources: [{ id: 'g', name: 'G', type: 'graphql', connection: { url }, queries: { q: '{ x }' } }] },
      });
      assert.equal(gql.status, 400, `graphql ${url}`);
      assert.match(gql.body.error.message, /connection\.url/, url);
      const ai = await h.request('PUT', `/routes/tenants/${tenant.id}/ai`, {
        key: tenant.key,
        body: { base_url: url, api_key: 'sk-test', chat_model: 'm', embedding_model: 'e' },
      });
      assert.equal(ai.status, 400, `ai ${url}: ${JSON.stringify(ai.body)}`);
      assert.match(ai.body.error.message, /base_url/, url);
      const channel = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, {
        key: tenant.key,
        body: {
          provider: 'meta',
          api_base_url: url,
          credentials: {
            phone_number_id: String(Date.now()),
            access_token: 'token-123456',
            app_secret: 'secret-123456',
            verify_token: 'verify-123456',
          },
        },
      });
      assert.equal(channel.status, 400, `channel ${url}: ${JSON.stringify(channel.body)}`);
      assert.match(channel.body.error.message, /api_base_url/, url);
    }
    // Refused means unchanged: no source, no AI profile, no channel was stored.
    assert.deepEqual((await h.request('GET', `/routes/tenants/${tenant.id}/data-sources`, { key: tenant.key })).body.data_sources, []);
    assert.equal((await h.request('GET', `/routes/tenants/${tenant.id}/ai`, { key: tenant.key })).status, 404);
    const channels = await h.runtime.pool.query("SELECT count(*)::int AS n FROM channels WHERE tenant_id = $1 AND provider = 'meta'", [
      tenant.id,
    ]);
    assert.equal(channels.rows[0].n, 0);
    assert.equal(internal.hits, 0, 'the internal service saw no request');
  });

  it('EGRESS_ALLOW takes CIDRs, addresses and host:port, and nothing else', () => {
    assert.deepEqual(loadConfig({ EGRESS_ALLOW: '10.0.0.0/8, 192.168.1.5,crm.internal:8443,[fd00::1]:443' }).EGRESS_ALLOW, [
      '10.0.0.0/8',
      '192.168.1.5',
      'crm.internal:8443',
      '[fd00::1]:443',
    ]);
    assert.deepEqual(loadConfig({}).EGRESS_ALLOW, []);
    for (const bad of ['10.0.0.0/99', 'crm.internal', 'http://x/', '*'])
      assert.throws(() => loadConfig({ EGRESS_ALLOW: bad }), /EGRESS_ALLOW/);
  });

  it('refuses SQL hosts in every form, including Parley own database', async () => {
    const dbPort = Number(new URL(h.databaseUrl).port || 5432);
    const hosts: [string, number][] = [
      ['127.0.0.2', 5432],
      ['2130706434', 5432],
      ['0x7f.0.0.2', 5432],
      ['127.2', 3306],
      ['::ffff:127.0.0.2', 5432],
      ['localhost', 5432],
      ['169.254.169.254', 5432],
      ['10.0.0.7', 3306],
      ['127.0.0.1', dbPort],
      ['::ffff:127.0.0.1', dbPort],
    ];
    for (const [host, port] of hosts) {
      for (const type of ['postgresql', 'mysql']) {
        const res = await h.request('PUT', `/routes/tenants/${tenant.id}/data-sources`, {
          key: tenant.key,
          body: {
            data_sources: [
              { id: 's', name: 'S', type, connection: { host, port, database: 'd', username: 'u' }, queries: { q: 'SELECT 1' } },
            ],
          },
        });
        assert.equal(res.status, 400, `${type} ${host}:${port}: ${JSON.stringify(res.body)}`);
        assert.match(res.body.error.message, /data_sources\.0\.connection\.host.*egress policy/, `${host}:${port}`);
      }
    }
  });

  it('checks the address actually connected to: a name that re-resolves to 127.0.0.2 after validation is refused at run time', async () => {
    let calls = 0;
    installEgressPolicy(
      new EgressPolicy({
        allow: h.config.EGRESS_ALLOW,
        ownServices: ownServices(h.config, h.databaseUrl),
        // Rebinding DNS: a public address while the PUT is checked, loopback when the worker connects.
        resolver: async (name) =>
          name === 'crm.rebind.test'
            ? [calls++ === 0 ? '93.184.216.34' : '127.0.0.2']
            : (await lookup(name, { all: true })).map((a) => a.address),
      }),
    );
    try {
      const put = await h.request('PUT', `/routes/tenants/${tenant.id}/data-sources`, {
        key: tenant.key,
        body: {
          data_sources: [
            {
              id: 'rebind',
              name: 'R',
              type: 'rest_api',
              connection: { base_url: `http://crm.rebind.test:${internal.port}` },
              endpoints: { e: '/x' },
            },
          ],
        },
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const started = Date.now();
      const probe = await h.request('POST', `/routes/tenants/${tenant.id}/data-sources/rebind/test`, { key: tenant.key });
      assert.equal(probe.status, 200, JSON.stringify(probe.body));
      assert.equal(probe.body.ok, false);
      assert.match(probe.body.error, /egress policy/);
      assert.ok(Date.now() - started < 8000, 'refused once, not retried');
      await assert.rejects(
        egressFetch(`http://crm.rebind.test:${internal.port}/`),
        (err: Error) => err.cause instanceof EgressRefusedError,
      );
    } finally {
      installEgressPolicy(installed);
    }
    assert.equal(internal.hits, 0, 'the internal service saw no request');
  });

  it('refuses at run time in every client: LLM, provider API, media download (provider hosts only, per-type size cap)', async () => {
    const isRefusal = (err: unknown) => err instanceof ApplicationFailure && err.type === 'EgressRefused' && err.nonRetryable;
    await assert.rejects(
      chatCompletion(llmClient({ baseUrl: `${internal.url}/v1`, apiKey: 'sk-test' }, 2000), {
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
      }),
      (err: unknown) => err instanceof LlmError && err.failureType === 'EgressRefused' && !err.retryable,
    );
    await assert.rejects(providerFetch('meta', `${internal.url}/v21.0/1/messages`, { method: 'POST', body: '{}' }, 2000), isRefusal);

    const cdn = await listener('127.0.0.1', (req, res) => {
      if (req.url === '/redirect') res.writeHead(302, { location: `${internal.url}/media` }).end();
      else if (req.url === '/huge') res.writeHead(200, { 'content-type': 'image/jpeg' }).end(Buffer.alloc(6 * 1024 * 1024));
      else res.writeHead(200, { 'content-type': 'image/jpeg' }).end('jpeg-bytes');
    });
    const host = new URL(cdn.url).host;
    try {
      const hosts = ['*.fbcdn.net', 'lookaside.fbsbx.com', host];
      assert.equal((await fetchBytes('meta', `${cdn.url}/ok`, {}, 2000, { hosts })).data.toString(), 'jpeg-bytes');
      // A media URL on any other host, even an allowlisted one, is not the provider's.
      const otherPort = await listener('127.0.0.1');
      await assert.rejects(fetchBytes('meta', `${otherPort.url}/x`, {}, 2000, { hosts }), isRefusal);
      assert.equal(otherPort.hits, 0);
      await otherPort.close();
      await assert.rejects(fetchBytes('meta', `${internal.url}/x`, {}, 2000, { hosts: [...hosts, new URL(internal.url).host] }), isRefusal);
      await assert.rejects(fetchBytes('meta', `${cdn.url}/redirect`, { authorization: 'Bearer t' }, 2000, { hosts }), isRefusal);
      await assert.rejects(
        fetchBytes('meta', `${cdn.url}/huge`, {}, 5000, { hosts, mimeType: 'image/jpeg' }),
        (err: unknown) =>
          err instanceof ApplicationFailure &&
          err.type === 'ProviderRejected' &&
          /exceeded/.test(String((err.details?.[0] as { title?: string })?.title)),
      );
    } finally {
      await cdn.close();
    }
    assert.equal(internal.hits, 0, 'the internal service saw no request');
  });

  it('does not follow a redirect to an internal address, and refuses it hop by hop when following', async () => {
    const redirector = await listener('127.0.0.1', (_req, res) => res.writeHead(302, { location: `${internal.url}/steal` }).end());
    try {
      const res = await egressFetch(redirector.url);
      assert.equal(res.status, 302);
      await res.body?.cancel();
      await assert.rejects(egressFetch(redirector.url, {}, { maxRedirects: 3 }), (err: Error) => err.cause instanceof EgressRefusedError);
      const numeric = await listener('127.0.0.1', (_req, res) =>
        res.writeHead(307, { location: `http://2130706434:${internal.port}/` }).end(),
      );
      await assert.rejects(egressFetch(numeric.url, {}, { maxRedirects: 3 }), (err: Error) => err.cause instanceof EgressRefusedError);
      await numeric.close();
    } finally {
      await redirector.close();
    }
    assert.equal(internal.hits, 0, 'the internal service saw no request');
  });

  it('cuts a huge chunked response at the byte cap and a dripping one at the time cap', async () => {
    const huge = await listener('127.0.0.1', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      let sent = 0;
      const pump = () => {
        while (sent < 200 && res.write(chunk)) sent++;
        if (sent < 200) res.once('drain', pump);
        else res.end();
      };
      pump();
    });
    const drip = await listener('127.0.0.1', (_req, res) => {
      res.writeHead(200);
      const t = setInterval(() => res.write('x'), 100);
      res.on('close', () => clearInterval(t));
    });
    try {
      const res = await egressFetch(huge.url);
      assert.equal(res.headers.get('content-length'), null, 'chunked, no length announced');
      await assert.rejects(readCapped(res, { maxBytes: 1024 * 1024, timeoutMs: 10_000 }), ResponseTooLargeError);
      const started = Date.now();
      await assert.rejects(readCapped(await egressFetch(drip.url), { maxBytes: 1024 * 1024, timeoutMs: 500 }), ResponseTimeoutError);
      assert.ok(Date.now() - started < 3000);

      // The same through a data source lookup: a bad_request, not a worker buffering 12 MB.
      const pools = new ConnectorPools();
      const source = dataSourceSchema.parse({
        id: 'huge',
        name: 'H',
        type: 'rest_api',
        connection: { base_url: huge.url },
        endpoints: { e: '/x' },
      });
      await assert.rejects(runQuery(pools, tenant.id, source, 'e', {}, [], { timeoutMs: 5000 }), /too large/);
      await pools.close();
    } finally {
      await huge.close();
      await drip.close();
    }
  });
});
