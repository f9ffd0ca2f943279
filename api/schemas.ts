import { z } from 'zod';
import { E164_PATTERN, TENANT_ID_PATTERN } from '../core/platform/ids.js';

export const errorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string() }) })
  .describe('Every error: a stable code and a human message naming the problem');

export const tenantId = z.string().regex(TENANT_ID_PATTERN, 'must be a slug: lowercase letters, digits and dashes, 2-63 characters');
export const e164 = z.string().regex(E164_PATTERN, 'must be an E.164 phone number: "+" and 8-15 digits');
export const tenantParams = z.object({ tenant_id: tenantId });

export const errorResponses = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
} as const;

export const bearer = [{ bearerAuth: [] }];
