// Fuzzing of the built broker's HTTP handling for a fixed time budget: random and mutated requests
// over raw TCP (methods, paths, headers, bodies, chunked encodings, conflicting lengths, partial
// slowloris-style requests, plain garbage), many at once. Afterwards the process is alive, answers
// /healthz, never answered 5xx, never left a connection hanging past its request timeout, and
// created nothing in the cluster. The randomness is seeded; the seed is printed (FUZZ_SEED replays).
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { connect } from 'node:net';
import { base64url } from 'jose';
import type { RunningBroker } from '../../test/support/broker.js';
import { managedObjects } from '../../test/support/managed-objects.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';

const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? 25_000);
const WORKERS = 16;
/** The broker's own request deadline in this test; a connection open much longer is a hang. */
const REQUEST_TIMEOUT_MS = 2_000;
const HANG_AFTER_MS = REQUEST_TIMEOUT_MS + 8_000;

let env: BrokerEnv;
let broker: RunningBroker;
let validJwts: string[] = [];

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['fuzz'] });
  broker = await env.startBroker({
    https: false,
    config: {
      limits: { bodyBytes: 16384, requestTimeoutMs: REQUEST_TIMEOUT_MS, perRepositoryPerMinute: 600 },
    },
  });
  // Properly signed tokens that the policy refuses (another repository): the fuzzer mutates them,
  // so it also reaches the code behind signature verification, yet can never earn a grant.
  validJwts = await Promise.all(Array.from({ length: 8 }, () => env.issuer.sign({ repository_id: '31337' })));
}, 120_000);

afterAll(async () => {
  await broker?.kill();
  await env?.cleanup();
});

/** mulberry32: small, seedable, good enough to pick fuzz cases. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  return { next, int, pick, bytes };
}
type Rng = ReturnType<typeof prng>;

const METHODS = [
  'GET',
  'POST',
  'DELETE',
  'PUT',
  'PATCH',
  'OPTIONS',
  'HEAD',
  'TRACE',
  'CONNECT',
  'POST ',
  'G\u0000T',
  'XYZZY',
];

function path(r: Rng): string {
  return r.pick([
    () => '/v1/exchange',
    () => '/v1/exchange/',
    () => '/V1/EXCHANGE',
    () => `/v1/grants/gha-${r.bytes(16).toString('hex')}`,
    () => `/v1/grants/${r.pick(['%', '%zz', '%E0%A4%A', '%00', '..%2f..%2f', '%ff%fe'])}`,
    () => '/v1/grants/',
    () => `/v1/grants/a/b/c`,
    () => '/healthz?x=' + 'a'.repeat(r.int(20_000)),
    () => '/../../../etc/passwd',
    () => '//v1//exchange',
    () => '*',
    () => 'http://evil.example/v1/exchange',
    () => '/metrics',
    () =>
      '/' +
      r
        .bytes(r.int(64))
        .toString('latin1')
        .replace(/[\r\n ]/g, 'x'),
  ])();
}

function token(r: Rng): string {
  const jwt = r.pick(validJwts);
  return r.pick([
    () => jwt,
    () => {
      const b = Buffer.from(jwt);
      for (let i = 0; i < 1 + r.int(4); i += 1)
        b[r.int(b.length)] = r.pick([...Buffer.from('A.-_=+/ \u00ff')]);
      return b.toString('latin1');
    },
    () => jwt.split('.').slice(0, r.int(4)).join('.'),
    () =>
      `${base64url.encode(JSON.stringify({ alg: r.pick(['none', 'HS256', 'RS256', 'ES256']), kid: 'x' }))}.${jwt.split('.')[1]}.`,
    () => 'a'.repeat(r.int(20_000)),
    () => r.bytes(r.int(200)).toString('base64'),
  ])();
}

function body(r: Rng): Buffer {
  const honest = { namespace: env.ns, role: 'viewer', ttlSeconds: 600 };
  return r.pick([
    () => Buffer.from(JSON.stringify(honest)),
    () => {
      const b = Buffer.from(JSON.stringify(honest));
      for (let i = 0; i < 1 + r.int(6); i += 1) b[r.int(b.length)] = r.int(256);
      return b;
    },
    () => Buffer.from(`${'['.repeat(r.int(10_000))}${']'.repeat(r.int(10_000))}`),
    () =>
      Buffer.from(
        JSON.stringify({ ...honest, [r.pick(['__proto__', 'constructor', 'admin', ''])]: { a: 1 } }),
      ),
    () =>
      Buffer.from(
        JSON.stringify({
          namespace: r.pick([1, null, [], {}, 'kube-system', 'A'.repeat(300)]),
          role: r.pick([true, 'viewer', '\u0000']),
        }),
      ),
    () => r.bytes(r.int(40_000)),
    () => Buffer.alloc(0),
    () => Buffer.from('\ufeff' + JSON.stringify(honest)),
  ])();
}

/** One raw HTTP/1.1 request, well or badly formed. */
function request(r: Rng): { chunks: Buffer[]; partial: boolean } {
  const b = body(r);
  const headers: string[] = [`Host: 127.0.0.1`];
  if (r.next() < 0.8)
    headers.push(`Authorization: ${r.pick(['Bearer ', 'bearer ', 'Basic ', 'Bearer  ', ''])}${token(r)}`);
  if (r.next() < 0.8)
    headers.push(
      `Content-Type: ${r.pick(['application/json', 'application/json; charset=utf-8', 'text/plain', 'APPLICATION/JSON', 'multipart/form-data; boundary=x', ''])}`,
    );
  const framing = r.pick(['length', 'chunked', 'both', 'wrong-length', 'short-length', 'bad-chunks', 'none']);
  let payload = b;
  let partial = false;
  if (framing === 'length' || framing === 'both') headers.push(`Content-Length: ${b.length}`);
  if (framing === 'wrong-length')
    headers.push(
      `Content-Length: ${r.pick(['-1', '1e3', 'abc', '99999999999999999999', `${b.length}, ${b.length + 1}`])}`,
    );
  if (framing === 'short-length') {
    headers.push(`Content-Length: ${b.length + 1 + r.int(1000)}`); // promises more than it sends
    partial = true;
  }
  if (framing === 'chunked' || framing === 'both' || framing === 'bad-chunks') {
    headers.push('Transfer-Encoding: chunked');
    const parts: Buffer[] = [];
    for (let i = 0; i < b.length; i += 1 + r.int(4096)) {
      const c = b.subarray(i, i + 1 + r.int(4096));
      parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    }
    parts.push(
      Buffer.from(
        framing === 'bad-chunks' ? r.pick(['zz\r\n', 'fffffffffffffff\r\n', '0\r\nX: y']) : '0\r\n\r\n',
      ),
    );
    payload = Buffer.concat(parts);
    if (framing === 'bad-chunks') partial = true;
  }
  for (let i = r.int(3); i > 0; i -= 1)
    headers.push(
      r.pick([
        'X-Forwarded-For: 10.0.0.1',
        `X-Big: ${'b'.repeat(r.int(70_000))}`,
        'Expect: 100-continue',
        'Connection: keep-alive',
        'Bad Header: x',
        'X-Null: \u0000',
      ]),
    );
  const head = Buffer.from(
    `${r.pick(METHODS)} ${path(r)} HTTP/1.${r.pick(['1', '1', '0', '9'])}\r\n${headers.join('\r\n')}\r\n\r\n`,
    'latin1',
  );
  const whole = Buffer.concat([head, payload]);
  if (r.next() < 0.1) {
    // Slowloris: stop part-way through the headers or the body, and never finish.
    return { chunks: [whole.subarray(0, 1 + r.int(whole.length - 1))], partial: true };
  }
  if (r.next() < 0.08) return { chunks: [r.bytes(1 + r.int(4096))], partial: true }; // raw TCP garbage
  // Split the bytes at random points, as a slow or fragmenting network would.
  const chunks: Buffer[] = [];
  for (let i = 0; i < whole.length;) {
    const n = 1 + r.int(r.next() < 0.3 ? 16 : 65_536);
    chunks.push(whole.subarray(i, i + n));
    i += n;
  }
  return { chunks, partial };
}

interface Outcome {
  status?: number;
  closedWithoutAnswer?: boolean;
  hung?: boolean;
}

function send(port: number, chunks: Buffer[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ hung: true }), HANG_AFTER_MS);
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      if (m && got.includes('\r\n\r\n')) finish({ status: Number(m[1]) });
    });
    socket.on('error', () => finish({ closedWithoutAnswer: true }));
    socket.on('close', () => finish({ closedWithoutAnswer: true }));
    socket.on('connect', () => {
      void (async () => {
        for (const c of chunks) {
          if (done) return;
          socket.write(c);
          if (chunks.length > 1 && Math.random() < 0.05) await new Promise((w) => setTimeout(w, 20));
        }
      })();
    });
  });
}

test(`fuzzing the broker's HTTP handling for ${BUDGET_MS / 1000} s: no crash, no hang, no 5xx, nothing created`, async () => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  console.log(`fuzz seed ${seed} (replay with FUZZ_SEED=${seed})`);
  const port = Number(new URL(broker.url).port);
  const before = managedObjects([env.ns]);
  const statuses = new Map<number, number>();
  const fiveHundreds: string[] = [];
  const hung: string[] = [];
  let tried = 0;
  let closed = 0;
  let hangs = 0;
  const deadline = Date.now() + BUDGET_MS;

  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      const r = prng(seed + w);
      while (Date.now() < deadline) {
        const req = request(r);
        tried += 1;
        const o = await send(port, req.chunks);
        if (o.hung) {
          hangs += 1;
          if (hung.length < 5)
            hung.push(
              `${req.partial ? 'partial' : 'complete'}: ${Buffer.concat(req.chunks).subarray(0, 160).toString('latin1')}`,
            );
        }
        if (o.closedWithoutAnswer) closed += 1;
        if (o.status !== undefined) {
          statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
          if (o.status >= 500 && fiveHundreds.length < 5)
            fiveHundreds.push(Buffer.concat(req.chunks).subarray(0, 200).toString('latin1'));
        }
      }
    }),
  );
  console.log(
    `fuzz: inputs tried ${tried}, answered ${[...statuses].map(([s, n]) => `${s}x${n}`).join(' ')}, ` +
      `closed without answer ${closed}, hangs ${hangs}`,
  );

  // Alive, quick to answer, and the cluster untouched.
  expect(broker.process.exitCode).toBeNull();
  expect((await broker.request('GET', '/healthz')).status).toBe(200);
  expect(hung).toEqual([]);
  expect(hangs).toBe(0);
  expect(fiveHundreds).toEqual([]);
  expect(tried).toBeGreaterThan(200);
  const after = managedObjects([env.ns]);
  expect(after).toEqual(before);
  console.log(`fuzz: objects leaked ${after.length - before.length}`);
  // The broker still does its job.
  const ok = await broker.request('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace: env.ns, role: 'viewer' },
  });
  expect(ok.status).toBe(200);
  const g = ok.body as { grantId: string; token: string };
  expect((await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token })).status).toBe(200);
});
