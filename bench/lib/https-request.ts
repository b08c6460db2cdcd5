// One HTTPS request with its whole answer as text: what the bench's broker and Kubernetes
// clients send through their keep-alive agents.
import { request, type RequestOptions } from 'node:https';

export function sendRequest(
  options: RequestOptions,
  payload?: string,
): Promise<{ status: number; text: string }> {
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
    req.on('error', (err) =>
      reject(
        new Error(
          `${options.method ?? 'GET'} ${options.hostname}:${options.port} ${(options.path ?? '').split('?')[0]}${req.reusedSocket ? ' (reused socket)' : ''}: ${err.message}`,
          { cause: err },
        ),
      ),
    );
    req.end(payload);
  });
}
