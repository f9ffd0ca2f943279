import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { registerAuth } from './auth.js';
import type { Config } from '../core/platform/config.js';
import type { ApiDeps } from './deps.js';
import { frameworkErrors, registerErrorHandling } from './errors.js';
import { registerRequestLog } from './request-log.js';
import { registerJsonParser } from './json.js';
import { registerAuthThrottle, registerSecurity } from './security.js';
import { registerTenantScope } from './tenant.js';
import { codecRoutes } from './routes/codec.js';
import { contactRoutes } from './routes/contacts.js';
import { conversationRoutes } from './routes/conversations.js';
import { dataRoutes } from './routes/data/index.js';
import { dataWorkerRoutes } from './routes/data-worker.js';
import { healthRoutes } from './routes/health.js';
import { inboundRoutes } from './routes/inbound.js';
import { keyRoutes } from './routes/keys.js';
import { legacyModeRoutes } from './routes/legacy-mode.js';
import { messageRoutes } from './routes/messages.js';
import { privacyRoutes } from './routes/privacy.js';
import { queueRoutes } from './routes/queue.js';
import { pulseRoutes } from './routes/pulse/index.js';
import { aiRoutes } from './routes/ai.js';
import { knowledgeDocumentRoutes } from './routes/knowledge-documents.js';
import { sandboxRoutes } from './routes/sandbox.js';
import { tenantRoutes } from './routes/tenants.js';
import { channelRoutes } from './routes/channels.js';
import { webhookRoutes } from './routes/webhooks.js';
import { mediaRoutes } from './routes/media.js';
import { webhookEndpointRoutes } from './routes/webhook-endpoints.js';

/**
 * Request logs carry the method and path only: query strings may hold phone numbers and
 * headers hold keys and signatures. Bodies are never logged. Each request is one line
 * (api/request-log.ts).
 */
export function loggerOptions(level: string, stream?: NodeJS.WritableStream): FastifyServerOptions['logger'] {
  return {
    level,
    name: 'api',
    ...(stream ? { stream } : {}),
    serializers: {
      req: (req: { method: string; url: string; id: string }) => ({ method: req.method, path: req.url.split('?')[0], reqId: req.id }),
    },
  };
}

/** A hop count means the nearest `hops` proxies are trusted; fastify's types only take it as a function. */
function trustProxy(setting: Config['TRUST_PROXY']): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof setting !== 'number') return setting;
  return (_address, hop) => hop < setting;
}

export async function buildApp(deps: ApiDeps, options: { logStream?: NodeJS.WritableStream } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(deps.config.LOG_LEVEL, options.logStream),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // Off by default: X-Forwarded-For is then ignored, so a client cannot pick its own rate-limit bucket.
    trustProxy: trustProxy(deps.config.TRUST_PROXY),
    frameworkErrors,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerJsonParser(app);
  registerErrorHandling(app);
  registerRequestLog(app);
  registerAuthThrottle(app, deps.config);
  registerAuth(app, { db: deps.db, adminApiKey: deps.adminApiKey, opsApiKey: deps.config.OPS_API_KEY });
  registerTenantScope(app, { db: deps.db });
  await registerSecurity(app, deps.config);

  await app.register(swagger, {
    openapi: {
      info: { title: 'Parley API', version: '0.1.0', description: 'Multi-tenant WhatsApp conversation engine on Temporal' },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes(deps));
  await app.register(tenantRoutes(deps));
  await app.register(inboundRoutes(deps));
  await app.register(sandboxRoutes(deps));
  await app.register(conversationRoutes(deps));
  await app.register(legacyModeRoutes(deps));
  await app.register(queueRoutes(deps));
  await app.register(messageRoutes(deps));
  await app.register(contactRoutes(deps));
  await app.register(pulseRoutes(deps));
  await app.register(aiRoutes(deps));
  await app.register(knowledgeDocumentRoutes(deps));
  await app.register(channelRoutes(deps));
  await app.register(webhookRoutes(deps));
  await app.register(mediaRoutes(deps));
  await app.register(webhookEndpointRoutes(deps));
  await app.register(keyRoutes(deps));
  await app.register(privacyRoutes(deps));
  await app.register(codecRoutes(deps));
  await app.register(dataRoutes(deps));
  await app.register(dataWorkerRoutes(deps));
  return app;
}
