import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  channelCredentials,
  findChannel,
  findChannelByRouting,
  findChannelsByRouting,
  findMetaChannelsByVerifyToken,
  phoneDigits,
} from '../../core/providers/channels.js';
import type { MediaDownloadWorkflow } from '../../contracts/delivery.js';
import { safeEqual } from '../../core/platform/crypto.js';
import { mediaWorkflowId } from '../../core/platform/ids.js';
import { AppError } from '../../core/platform/errors.js';
import { emptyIngest, ingest, type IngestResult } from '../../core/webhooks/receive.js';
import { infobipWebhookSchema, normalizeInfobip } from '../../core/webhooks/infobip.js';
import { metaPhoneNumberIds, metaWebhookSchema, normalizeMeta, verifyMetaSignature } from '../../core/webhooks/meta.js';
import { TWILIO_SEND_KEY_PARAM } from '../../core/providers/twilio.js';
import {
  isTwilioStatus,
  normalizeTwilioInbound,
  normalizeTwilioStatus,
  parseForm,
  verifyTwilioSignature,
} from '../../core/webhooks/twilio.js';
import type { ApiDeps } from '../deps.js';
import { exceedsJsonDepth, jsonTooDeep } from '../json.js';
import { errorSchema } from '../schemas.js';

const ackSchema = z.object({ accepted: z.number(), duplicates: z.number(), statuses: z.number() });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_META_NUMBERS = 50;
const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

/**
 * Provider webhooks. They carry no API key: each authenticates by the provider's signature
 * (or the channel's shared secret) over the raw body, before anything is stored. A rejected
 * request answers 401 and is logged with the reason only, never the body.
 */
export const webhookRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    // Signatures cover the exact bytes sent: keep the raw body and parse after verification.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

    const reject = (request: FastifyRequest, provider: string, reason: string): never => {
      request.log.warn({ provider, reason }, 'webhook rejected');
      throw new AppError(401, 'SIGNATURE_INVALID', 'the webhook signature or secret is missing or does not verify');
    };

    /**
     * Checked after the signature, so only the provider learns that the number is disabled. 404
     * (not 401): the request was genuine, and the provider's retries may still find it enabled.
     */
    const disabled = (): never => {
      throw new AppError(404, 'CHANNEL_DISABLED', 'this channel is disabled in Parley: enable it to receive its webhooks');
    };

    const finish = (result: IngestResult) => {
      for (const id of result.conversations) deps.relay.kick(id);
      for (const m of result.media) {
        // Fire and forget: the message is durable already; a failed start leaves the media pending.
        deps.temporal.workflow
          .start<MediaDownloadWorkflow>('mediaDownloadWorkflow', {
            workflowId: mediaWorkflowId(m.tenantId, m.mediaId),
            taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
            args: [m],
          })
          .catch((err: Error) => app.log.warn({ err: { name: err.name }, mediaId: m.mediaId }, 'media download not started'));
      }
      return { accepted: result.accepted, duplicates: result.duplicates, statuses: result.statuses };
    };

    const rawBody = (request: FastifyRequest): Buffer => (Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0));

    function parseJson(raw: Buffer): unknown {
      const text = raw.toString('utf8');
      if (exceedsJsonDepth(text)) throw jsonTooDeep();
      try {
        return JSON.parse(text);
      } catch {
        return undefined;
      }
    }

    function validated<T>(schema: z.ZodType<T>, value: unknown): T {
      const parsed = schema.safeParse(value);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new AppError(400, 'VALIDATION_FAILED', `body.${issue.path.join('.')}: ${issue.message}`);
      }
      return parsed.data;
    }

    app.get(
      '/webhooks/meta',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Meta webhook verification handshake',
          description: 'Echoes hub.challenge (text/plain) when hub.mode is "subscribe" and hub.verify_token matches a Meta channel.',
          tags: ['webhooks'],
          querystring: z.object({
            'hub.mode': z.string().optional(),
            'hub.verify_token': z.string().optional(),
            'hub.challenge': z.string().max(512).optional(),
          }),
          response: { 200: z.string().describe('hub.challenge, as text/plain'), 403: errorSchema },
        },
      },
      async (request, reply) => {
        const q = request.query;
        const token = q['hub.verify_token'];
        if (q['hub.mode'] !== 'subscribe' || !token || q['hub.challenge'] === undefined) {
          throw new AppError(403, 'VERIFICATION_FAILED', 'hub.mode must be "subscribe" with hub.verify_token and hub.challenge');
        }
        const matches = await findMetaChannelsByVerifyToken(deps.db, deps.keyring, token);
        const ok = matches.some((c) => safeEqual(channelCredentials(deps.keyring, c, 'meta').verify_token, token));
        if (!ok) throw new AppError(403, 'VERIFICATION_FAILED', 'hub.verify_token matches no Meta channel');
        return reply.type('text/plain').send(q['hub.challenge']);
      },
    );

    app.post(
      '/webhooks/meta',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Meta WhatsApp Cloud API webhook (messages and statuses, all Meta numbers)',
          description:
            'Verified with X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the app secret of every channel the payload addresses), ' +
            'routed by metadata.phone_number_id. Answers 200 once every message is durable. Entries for disabled channels are dropped; ' +
            'when every number addressed is disabled the answer is 404 CHANNEL_DISABLED.',
          tags: ['webhooks'],
          response: { 200: ackSchema, 400: errorSchema, 401: errorSchema, 404: errorSchema },
        },
      },
      async (request) => {
        const raw = rawBody(request);
        const signature = request.headers['x-hub-signature-256'];
        if (typeof signature !== 'string') return reject(request, 'meta', 'missing signature');
        const parsed = parseJson(raw);
        const ids = metaPhoneNumberIds(parsed);
        // Meta batches a handful of numbers at most; a body naming hundreds is not from Meta.
        if (ids.length > MAX_META_NUMBERS) return reject(request, 'meta', 'too many phone_number_ids');
        const found = await findChannelsByRouting(deps.db, 'meta', ids);
        if (found.length === 0) return reject(request, 'meta', 'no known phone_number_id');
        for (const channel of found) {
          if (!verifyMetaSignature(raw, signature, channelCredentials(deps.keyring, channel, 'meta').app_secret)) {
            return reject(request, 'meta', 'signature mismatch');
          }
        }
        const payload = validated(metaWebhookSchema, parsed);
        const enabled = found.filter((c) => c.enabled);
        if (enabled.length === 0) return disabled();
        const byKey = new Map(enabled.map((c) => [c.routingKey!, c]));
        const result = emptyIngest();
        for (const change of normalizeMeta(payload)) {
          const channel = byKey.get(change.phoneNumberId);
          if (channel) await ingest(deps.db, deps.keyring, channel, change.messages, change.statuses, result);
        }
        return finish(result);
      },
    );

    app.post(
      '/webhooks/twilio',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Twilio WhatsApp webhook: inbound messages (routed by To) and status callbacks (by From)',
          description:
            "Form-encoded. Verified with X-Twilio-Signature over PUBLIC_BASE_URL + path (or the request's own scheme, Host and path) " +
            "and the sorted form parameters, keyed by the channel's auth token. A disabled channel answers 404 CHANNEL_DISABLED.",
          tags: ['webhooks'],
          response: { 200: z.string().describe('Empty TwiML'), 400: errorSchema, 401: errorSchema, 404: errorSchema },
        },
      },
      async (request, reply) => {
        const params = parseForm(rawBody(request));
        const status = isTwilioStatus(params);
        const number = status ? params.From : params.To;
        if (!number) return reject(request, 'twilio', 'no To/From');
        const channel = await findChannelByRouting(deps.db, 'twilio', phoneDigits(number));
        if (!channel) return reject(request, 'twilio', 'unknown number');
        const creds = channelCredentials(deps.keyring, channel, 'twilio');
        const base = deps.config.PUBLIC_BASE_URL
          ? deps.config.PUBLIC_BASE_URL.replace(/\/+$/, '')
          : `${String(request.headers['x-forwarded-proto'] ?? request.protocol)
              .split(',')[0]
              .trim()}://${request.headers.host}`;
        const signature = request.headers['x-twilio-signature'];
        if (!verifyTwilioSignature(base + request.url, params, typeof signature === 'string' ? signature : undefined, creds.auth_token)) {
          return reject(request, 'twilio', 'signature mismatch');
        }
        if (params.AccountSid !== creds.account_sid) return reject(request, 'twilio', 'account mismatch');
        if (!channel.enabled) return disabled();
        const result = emptyIngest();
        if (status) {
          const sendKey = new URL(request.url, 'http://parley.invalid').searchParams.get(TWILIO_SEND_KEY_PARAM) ?? undefined;
          const s = normalizeTwilioStatus(params, sendKey?.slice(0, 512));
          await ingest(deps.db, deps.keyring, channel, [], s ? [s] : [], result);
        } else {
          const m = normalizeTwilioInbound(params);
          await ingest(deps.db, deps.keyring, channel, m ? [m] : [], [], result);
        }
        finish(result);
        return reply.type('text/xml').send(EMPTY_TWIML);
      },
    );

    app.post(
      '/webhooks/infobip/:channel_id',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Infobip WhatsApp webhook: inbound messages and delivery/seen reports (`results[]`)',
          description:
            "Authenticated by the channel's webhook secret in the X-Webhook-Secret header. A disabled channel answers 404 CHANNEL_DISABLED.",
          tags: ['webhooks'],
          params: z.object({ channel_id: z.string() }),
          response: { 200: ackSchema, 400: errorSchema, 401: errorSchema, 404: errorSchema },
        },
      },
      async (request) => {
        const secret = request.headers['x-webhook-secret'];
        if (typeof secret !== 'string' || !secret) return reject(request, 'infobip', 'missing secret');
        const id = request.params.channel_id;
        const channel = UUID.test(id) ? await findChannel(deps.db, id) : undefined;
        if (!channel || channel.provider !== 'infobip') return reject(request, 'infobip', 'unknown channel');
        const creds = channelCredentials(deps.keyring, channel, 'infobip');
        if (!safeEqual(secret, creds.webhook_secret)) return reject(request, 'infobip', 'secret mismatch');
        if (!channel.enabled) return disabled();
        const payload = validated(infobipWebhookSchema, parseJson(rawBody(request)));
        const items = normalizeInfobip(payload);
        // The destination number must be this channel's: a secret for one number does not post for another.
        const mine = items.messages.filter((m) => phoneDigits(m.to) === channel.routingKey).map((m) => m.message);
        const result = emptyIngest();
        await ingest(deps.db, deps.keyring, channel, mine, items.statuses, result);
        return finish(result);
      },
    );
  };
