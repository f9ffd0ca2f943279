import { DefaultFailureConverter } from '@temporalio/common';

/**
 * Loaded by path (`failureConverterPath`) in the client, the worker and the workflow bundle, so
 * it imports nothing but the SDK. A failure's message and stack trace then travel as an encoded
 * payload, through the payload codec, instead of in clear in the history: a tenant database's
 * error can echo a row (a name, a phone number).
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
