// The floor of the gateway's hop: a Node reverse proxy that does nothing but the hop itself. HTTPS
// in (the certificate given), every request passed on as it came (Host rewritten) to the API
// server over keep-alive HTTPS connections like the gateway's (upstream.ts), both bodies piped
// back. No token check, no audit line, no metrics: the bench puts it beside the gateway
// (scenarios/gateway.ts), so the gateway's own work is the difference between the two.
// Usage: node noop-proxy.mjs <certFile> <keyFile> <upstream URL> <upstream CA file>; prints its port.
import { readFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:https';

const [certFile, keyFile, upstreamUrl, caFile] = process.argv.slice(2);
const upstream = new URL(upstreamUrl);
const agent = new Agent({
  keepAlive: true,
  maxSockets: 2_048,
  maxFreeSockets: 64,
  ca: readFileSync(caFile),
});

const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const upstreamReq = request({
    hostname: upstream.hostname,
    port: upstream.port,
    method: req.method,
    path: req.url,
    agent,
    headers: { ...req.headers, host: upstream.host },
  });
  upstreamReq.on('response', (up) => {
    res.writeHead(up.statusCode, up.headers);
    up.on('error', () => res.destroy());
    up.pipe(res);
  });
  upstreamReq.on('error', () => res.destroy());
  res.on('close', () => {
    if (!res.writableFinished) upstreamReq.destroy();
  });
  // As the gateway: a request without a body goes on at once.
  if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)
    req.pipe(upstreamReq);
  else upstreamReq.end();
});
server.keepAliveTimeout = 5_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
