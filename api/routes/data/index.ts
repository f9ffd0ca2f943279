import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../../deps.js';
import { intentRoutes } from './intents.js';
import { queryRoutes } from './queries.js';
import { dataSourceRoutes } from './sources.js';

/** The Data Engine: data sources, intents, and the seed's query endpoints. */
export const dataRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    await app.register(dataSourceRoutes(deps));
    await app.register(intentRoutes(deps));
    await app.register(queryRoutes(deps));
  };
