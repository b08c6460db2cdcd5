// Small programs the edge test runs inside its network namespaces (node ns-tools.mjs <tool> ...):
//   token-server PORT                  the runner's ID-token endpoint: hands out the JWTs in $TOKENS
//                                      (a JSON list, one per request, as the runner would mint them)
//   tap PORT HOST HOSTPORT FILE        a recording hop in front of the edge: relays every byte and
//                                      appends both directions to FILE (the capture the test scans)
//   probe HOST PORT                    one TCP connect: prints "open", or the error code, or "timeout"
import { appendFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';

const [tool, ...args] = process.argv.slice(2);
if (tool === 'token-server') {
  const tokens = JSON.parse(process.env.TOKENS ?? '[]');
  createHttpServer((req, res) => {
    const value = tokens.shift();
    res.writeHead(value ? 200 : 500, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value ? { value } : { message: 'no token left' }));
  }).listen(Number(args[0]), '127.0.0.1', () => console.log('token server ready'));
} else if (tool === 'tap') {
  const [port, host, hostPort, file] = args;
  createServer((inbound) => {
    const out = connect(Number(hostPort), host);
    inbound.on('data', (c) => appendFileSync(file, c));
    out.on('data', (c) => appendFileSync(file, c));
    inbound.pipe(out).pipe(inbound);
    inbound.on('error', () => out.destroy());
    out.on('error', () => inbound.destroy());
    inbound.on('close', () => out.destroy());
    out.on('close', () => inbound.destroy());
  }).listen(Number(port), '127.0.0.1', () => console.log('tap ready'));
} else if (tool === 'probe') {
  const socket = connect(Number(args[1]), args[0]);
  const done = (what) => {
    console.log(what);
    process.exit(0);
  };
  socket.on('connect', () => done('open'));
  socket.on('error', (err) => done(err.code ?? err.message));
  setTimeout(() => done('timeout'), 3_000);
} else {
  console.error(`unknown tool ${tool}`);
  process.exit(2);
}
