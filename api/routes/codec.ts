import type { Payload } from '@temporalio/common';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../../core/platform/errors.js';
import { EncryptionCodec } from '../../core/temporal/codec.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses } from '../schemas.js';

const base64 = z
  .string()
  .max(8 * 1024 * 1024)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');

/** Temporal's remote codec protocol: payloads in proto3 JSON (bytes as base64). */
const payloadsJson = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string().max(256), base64).optional(), data: base64.optional() })).max(1000),
});
type PayloadsJson = z.infer<typeof payloadsJson>;

const fromJson = (p: PayloadsJson['payloads'][number]): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

const toJson = (p: Payload): PayloadsJson['payloads'][number] => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

/** A Temporal payload may be 2 MB; its base64 JSON a third larger. */
const CODEC_BODY_LIMIT = 4 * 1024 * 1024;

/**
 * The codec endpoint lets the Temporal Web UI and CLI show decrypted payloads to operators
 * holding the admin or ops key. Browsers call it cross-origin, so the configured UI origins
 * get CORS headers on every answer, errors included.
 */
export const codecRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const codec = new EncryptionCodec(deps.keyring, { display: true });
    const origins = new Set(
      deps.config.CODEC_CORS_ORIGINS.split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    );

    app.addHook('onSend', async (request, reply, payload) => {
      const origin = request.headers.origin;
      if (origin && origins.has(origin)) {
        reply.header('access-control-allow-origin', origin);
        reply.header('access-control-allow-credentials', 'true');
        reply.header('access-control-allow-methods', 'POST, OPTIONS');
        reply.header('access-control-allow-headers', 'authorization, content-type, x-namespace');
        reply.header('access-control-max-age', '600');
      }
      reply.header('vary', 'Origin');
      return payload;
    });

    for (const op of ['encode', 'decode'] as const) {
      app.options(`/codec/${op}`, { config: { auth: 'public' }, schema: { hide: true } }, async (_request, reply) =>
        reply.status(204).send(),
      );
      app.post(
        `/codec/${op}`,
        {
          config: { auth: 'ops' },
          bodyLimit: CODEC_BODY_LIMIT,
          schema: {
            summary:
              op === 'encode'
                ? 'Encrypt Temporal payloads (remote codec protocol)'
                : 'Decrypt Temporal payloads for the Temporal UI and CLI',
            tags: ['codec'],
            security: bearer,
            body: payloadsJson,
            response: { 200: payloadsJson, ...errorResponses },
          },
        },
        async (request) => {
          const payloads = request.body.payloads.map(fromJson);
          try {
            const out = op === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
            return { payloads: out.map(toJson) };
          } catch {
            throw new AppError(400, 'PAYLOAD_UNDECODABLE', 'body.payloads: a payload could not be decrypted with any key in the keyring');
          }
        },
      );
    }
  };
