import { z } from 'zod';
import { tenantParams } from '../../schemas.js';
import { tag } from '../contacts.js';

export const tags = ['pulse'];
export const campaignsPath = '/routes/tenants/:tenant_id/pulse/campaigns';

export const template = z.string().trim().min(1, 'must not be empty').max(4096);
export const message = z
  .object({
    template: template.describe('message text with {{name}}, {{first_name}} or {{<attribute>}} variables'),
    window_template: z
      .string()
      .regex(/^[a-z0-9_]{1,512}$/, 'must be an approved WhatsApp template name: lowercase letters, digits and "_"')
      .optional()
      .describe('approved template sent to contacts outside the 24-hour window; without it they are skipped'),
    variants: z
      .array(z.object({ tags: z.array(tag).min(1, 'must name at least one tag'), template }).strict())
      .max(20)
      .optional()
      .describe('rule-based personalisation: the first variant sharing a tag with the contact replaces the template'),
  })
  .strict();

export const campaignParams = tenantParams.extend({ id: z.uuid('must be a campaign id (UUID)') });
