import { ApplicationFailure } from '@temporalio/common';
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { channels, messageMedia } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { notFound } from '../platform/errors.js';
import type { Providers } from '../providers/index.js';

/**
 * Fetches an inbound media item from its provider and keeps it encrypted. A provider that
 * cannot download, or refuses for good, leaves the item `failed`; transient errors propagate
 * to be retried.
 */
export async function downloadMedia(
  { db, keyring, providers }: { db: Db; keyring: Keyring; providers: Providers },
  input: { tenantId: string; mediaId: string },
): Promise<{ status: 'downloaded' | 'failed'; sizeBytes?: number }> {
  const [row] = await db
    .select({ media: messageMedia, channel: channels })
    .from(messageMedia)
    .innerJoin(channels, eq(channels.id, messageMedia.channelId))
    .where(and(eq(messageMedia.tenantId, input.tenantId), eq(messageMedia.id, input.mediaId)));
  if (!row) throw notFound('MEDIA_NOT_FOUND', 'media no longer exists');
  if (row.media.status === 'downloaded') return { status: 'downloaded', sizeBytes: row.media.sizeBytes ?? undefined };
  const failed = async () => {
    await db.update(messageMedia).set({ status: 'failed' }).where(eq(messageMedia.id, row.media.id));
    return { status: 'failed' as const };
  };
  const provider = providers.forChannel(row.channel);
  if (!provider.downloadMedia) return failed();
  try {
    const media = await provider.downloadMedia(
      row.channel,
      keyring.decrypt(row.media.refEnc, { tenantId: input.tenantId, column: messageMedia.refEnc }),
    );
    const sealed = keyring.encryptColumnBytes(media.data, { tenantId: input.tenantId, column: messageMedia.contentEnc });
    await db
      .update(messageMedia)
      .set({
        status: 'downloaded',
        contentEnc: sealed.data,
        contentKey: sealed.label,
        sizeBytes: media.data.length,
        mimeType: row.media.mimeType ?? media.mimeType ?? null,
        downloadedAt: sql`now()`,
      })
      .where(eq(messageMedia.id, row.media.id));
    return { status: 'downloaded', sizeBytes: media.data.length };
  } catch (err) {
    // Provider errors are ApplicationFailures (providers/http.ts): a non-retryable one is final.
    if (err instanceof ApplicationFailure && err.nonRetryable) return failed();
    throw err;
  }
}
