import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../../deps.js';
import { campaignRoutes } from './campaigns.js';
import { contentRoutes } from './content.js';
import { runRoutes } from './runs.js';
import { settingsRoutes } from './settings.js';

/** Relational Pulse: campaigns, their runs, opt-out settings, and the seed's content endpoint. */
export const pulseRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    await app.register(campaignRoutes(deps));
    await app.register(runRoutes(deps));
    await app.register(settingsRoutes(deps));
    await app.register(contentRoutes(deps));
  };
