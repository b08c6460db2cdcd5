// Reading @kubernetes/client-node's ApiException (numeric `code`) without depending on its class.
import { errorMessage } from '../../shared/errors.js';
/**
 * The HTTP status of an API answer, or undefined. Only 100–599 count: other errors carry numeric
 * codes too (a fetch's timeout is a DOMException with code 23), and logging those as "HTTP 23" sent
 * operators looking for an answer that never came.
 */
export function statusCodeOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'number' && code >= 100 && code <= 599) return code;
  }
  return undefined;
}

export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isAlreadyExists = (err: unknown): boolean => statusCodeOf(err) === 409;
export const isConflict = isAlreadyExists;
/** Forbidden (403) or Unprocessable (422): the request itself was refused, retrying will not help. */
export const isRefused = (err: unknown): boolean => [403, 422].includes(statusCodeOf(err) ?? 0);

/** A short description for logs: the API status and reason, never request bodies. */
export function describeK8sError(err: unknown): string {
  const code = statusCodeOf(err);
  const body = (err as { body?: unknown } | undefined)?.body;
  let message: string | undefined;
  if (typeof body === 'string') {
    try {
      message = (JSON.parse(body) as { message?: string }).message;
    } catch {
      message = body.slice(0, 300);
    }
  } else if (body && typeof body === 'object' && 'message' in body) {
    message = String((body as { message: unknown }).message);
  }
  if (code !== undefined) return `HTTP ${code}${message ? `: ${message}` : ''}`;
  return errorMessage(err);
}

/** Runs a read and answers undefined for NotFound: the object's absence is an answer, not a failure. */
export async function readIgnoringNotFound<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Runs a delete and treats NotFound as success: revocation and reaping are idempotent. */
export async function deleteIgnoringNotFound(del: () => Promise<unknown>): Promise<'deleted' | 'absent'> {
  try {
    await del();
    return 'deleted';
  } catch (err) {
    if (isNotFound(err)) return 'absent';
    throw err;
  }
}
