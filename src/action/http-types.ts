// What the action's HTTP callers share with the transport (http-transport.ts), without loading it:
// the credential plugin needs these on every call but the transport, with node:https and node:tls,
// only when it renews.
import type { IncomingHttpHeaders } from 'node:http';

export interface HttpRequest {
  method: 'GET' | 'POST' | 'DELETE';
  url: URL;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export type HttpTransport = (req: HttpRequest) => Promise<HttpResponse>;

/** The request never got an HTTP answer (DNS, refused, reset, TLS, timeout): always worth a retry. */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NetworkError';
  }
}
