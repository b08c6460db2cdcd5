// One HTTPS request with its whole answer as text: what the bench's broker and Kubernetes
// clients send through their keep-alive agents.
import { request, type RequestOptions } from 'node:https';

/**
 * A server may close a kept-alive socket just as the agent hands it to the next request (Node's
 * servers close idle sockets after 5 s): a GET that fails that way, before any answer, is sent again
 * once on a new socket, as HTTP clients do for idempotent requests. Anything else fails the run.
 */
export async function sendRequest(
  options: RequestOptions,
  payload?: string,
): Promise<{ status: number; text: string }> {
  try {
    return await sendOnce(options, payload);
  } catch (err) {
    const { reused, cause } = err as Error & { reused?: boolean; cause?: NodeJS.ErrnoException };
    const idempotent = (options.method ?? 'GET') === 'GET';
    if (!reused || !idempotent || cause?.code !== 'ECONNRESET') throw err;
    return sendOnce(options, payload);
  }
}

function sendOnce(options: RequestOptions, payload?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    // Which call failed, and whether on a kept-alive socket (the server may close one as it is reused).
    req.on('error', (err) => {
      const where = `${options.method ?? 'GET'} ${options.hostname}:${options.port} ${(options.path ?? '').split('?')[0]}`;
      const message = `${where}${req.reusedSocket ? ' (reused socket)' : ''}: ${err.message}`;
      reject(Object.assign(new Error(message, { cause: err }), { reused: req.reusedSocket }));
    });
    req.end(payload);
  });
}
