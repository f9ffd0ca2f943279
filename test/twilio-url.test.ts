import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { twilioSignature } from '../core/webhooks/twilio.js';
import { createHarness, uniquePhone, type Harness } from './helpers/harness.js';

const SID = `AC${'c3'.repeat(16)}`;
const TOKEN = 'twilio-url-token';

async function post(h: Harness, signedUrl: string, params: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${h.baseUrl}/webhooks/twilio?src=test`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': twilioSignature(signedUrl, params, TOKEN),
      ...headers,
    },
    body: new URLSearchParams(params).toString(),
  });
  return res.status;
}

async function setup(h: Harness) {
  const tenant = await h.createTenant();
  const number = uniquePhone();
  const res = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, {
    key: tenant.key,
    body: { provider: 'twilio', credentials: { account_sid: SID, auth_token: TOKEN, from: number } },
  });
  assert.equal(res.status, 201);
  return (from = uniquePhone()) => {
    const sid = `SM${randomBytes(16).toString('hex')}`;
    return { MessageSid: sid, AccountSid: SID, From: `whatsapp:${from}`, To: `whatsapp:${number}`, Body: 'hello', NumMedia: '0' };
  };
}

describe('Twilio signature URL: the URL as Twilio called it', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness({ worker: false });
  });
  after(() => h.close());

  it('without PUBLIC_BASE_URL uses the request scheme (X-Forwarded-Proto), Host, path and query', async () => {
    const params = await setup(h);
    const own = `${h.baseUrl}/webhooks/twilio?src=test`;
    assert.equal(await post(h, own, params()), 200);
    assert.equal(await post(h, `${h.baseUrl}/webhooks/twilio`, params()), 401, 'the query string is part of the signed URL');
    const httpsUrl = own.replace('http://', 'https://');
    assert.equal(await post(h, httpsUrl, params(), { 'x-forwarded-proto': 'https' }), 200);
    assert.equal(await post(h, httpsUrl, params()), 401);
  });
});

describe('Twilio signature URL with PUBLIC_BASE_URL', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness({ worker: false, env: { PUBLIC_BASE_URL: 'https://parley.example.com/' } });
  });
  after(() => h.close());

  it('verifies against PUBLIC_BASE_URL + path, not the local address', async () => {
    const params = await setup(h);
    assert.equal(await post(h, 'https://parley.example.com/webhooks/twilio?src=test', params()), 200);
    assert.equal(await post(h, `${h.baseUrl}/webhooks/twilio?src=test`, params()), 401);
  });
});
