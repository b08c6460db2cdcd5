// The floor of the gateway's hop: a Node reverse proxy that does nothing but the hop itself. HTTPS
// in (the certificate given), every request passed on as it came to the API server over the same
// kind of upstream connections as the gateway's (upstream.ts: an undici Pool, kept alive, no
// timeouts), the answer written back with the same back-pressure. No token check, no audit line,
// no metrics: the bench puts it beside the gateway (scenarios/gateway.ts), so the gateway's own
// work is the difference between the two.
// Usage: node noop-proxy.mjs <certFile> <keyFile> <upstream URL> <upstream CA file>; prints its port.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { Pool } from 'undici';

const [certFile, keyFile, upstreamUrl, caFile] = process.argv.slice(2);
const upstream = new URL(upstreamUrl);
const pool = new Pool(upstream.origin, {
  connections: 2_048,
  pipelining: 1,
  keepAliveTimeout: 30_000,
  headersTimeout: 0,
  bodyTimeout: 0,
  connect: { ca: readFileSync(caFile) },
});
/** What undici sets itself or refuses to be given. */
const NOT_PASSED = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect']);
/** Hop-by-hop answer headers: Node frames the answer towards the client itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding']);

const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const headers = {};
  for (const name in req.headers) if (!NOT_PASSED.has(name)) headers[name] = req.headers[name];
  // As the gateway: a request without a body goes on at once.
  const hasBody =
    req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  let controller;
  let done = false;
  pool.dispatch(
    { method: req.method, path: req.url, headers, body: hasBody ? req : null },
    {
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(_c, status, upHeaders) {
        if (status < 200) return;
        const out = {};
        for (const name in upHeaders) if (!HOP_BY_HOP.has(name)) out[name] = upHeaders[name];
        res.writeHead(status, out);
        if (upHeaders['content-length'] === undefined) res.flushHeaders();
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk) && !c.paused) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        done = true;
        res.end();
      },
      onResponseError() {
        res.destroy();
      },
    },
  );
  res.on('close', () => {
    if (!done) controller?.abort(new Error('client gone'));
  });
});
server.keepAliveTimeout = 5_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
