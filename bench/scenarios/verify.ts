// 2. JWT review throughput: the broker's verifier (src/broker/auth/token-verifier.ts, warm JWKS
// cache, all of its checks and its replay cache) against jose's bare jwtVerify with the public key,
// in this same process, on the same tokens. Then the first exchange of a freshly started broker,
// whose JWKS cache is cold (discovery + JWKS fetch in the request path).
import { importJWK, jwtVerify } from 'jose';
import { createTokenVerifier } from '../../src/broker/auth/token-verifier.js';
import { DEFAULT_AUDIENCE } from '../../src/shared/api.js';
import type { Scenario } from '../lib/context.js';
import { median, nowMs } from '../lib/stats.js';

export interface VerifyResults {
  tokensPerRound: number;
  rounds: { bare: number; broker: number; ratio: number }[];
  bareThroughput: number;
  brokerThroughput: number;
  ratio: number;
  cold: { firstMs: number; secondMs: number; jwksFetches: number }[];
  coldFirstMs: number;
  coldSecondMs: number;
}

export const runVerifyBench: Scenario<VerifyResults> = async (ctx, settings, log) => {
  const { issuer } = ctx;
  const key = await importJWK(issuer.publicJwk, 'RS256');
  const verifier = createTokenVerifier({
    issuers: [{ issuer: issuer.issuer }],
    audience: DEFAULT_AUDIENCE,
    leewaySeconds: 5,
  });
  const bareOptions = { issuer: issuer.issuer, audience: DEFAULT_AUDIENCE, algorithms: ['RS256'] };
  // Warm both paths (JWKS fetched once here; JIT).
  for (const t of await ctx.presign(300)) {
    await jwtVerify(t, key, bareOptions);
    await verifier.verify(t);
  }

  // Each round verifies the same fresh tokens both ways, in small alternating chunks, so that
  // load from other processes on a shared machine falls on both sides alike.
  const n = settings.verifyCount;
  const CHUNK = 50;
  const roundCount = Math.max(3, settings.reps);
  const rounds: VerifyResults['rounds'] = [];
  for (let r = 0; r < roundCount; r += 1) {
    const tokens = await ctx.presign(n);
    let bareMs = 0;
    let brokerMs = 0;
    for (let from = 0, k = 0; from < n; from += CHUNK, k += 1) {
      const chunk = tokens.slice(from, from + CHUNK);
      const timeBare = async () => {
        const t0 = nowMs();
        for (const t of chunk) await jwtVerify(t, key, bareOptions);
        bareMs += nowMs() - t0;
      };
      const timeBroker = async () => {
        const t0 = nowMs();
        for (const t of chunk) await verifier.verify(t);
        brokerMs += nowMs() - t0;
      };
      if (k % 2 === 0) {
        await timeBare();
        await timeBroker();
      } else {
        await timeBroker();
        await timeBare();
      }
    }
    const bare = (n / bareMs) * 1000;
    const broker = (n / brokerMs) * 1000;
    rounds.push({ bare, broker, ratio: broker / bare });
    log(
      `  verify round ${r + 1}/${roundCount}: jose ${bare.toFixed(0)}/s, broker ${broker.toFixed(0)}/s, ratio ${(broker / bare).toFixed(3)}`,
    );
  }

  // Cold JWKS: a new broker process; its first exchange fetches discovery + JWKS.
  const ns = ctx.namespaces.exchange;
  const cold: VerifyResults['cold'] = [];
  for (let i = 0; i < settings.coldJwksReps; i += 1) {
    const bb = await ctx.startBroker([ns]);
    try {
      const [first, second] = await ctx.presign(2);
      const before = issuer.jwksRequests();
      let t0 = nowMs();
      await bb.client.exchange(first!, ctx.exchangeBody(ns));
      const firstMs = nowMs() - t0;
      const jwksFetches = issuer.jwksRequests() - before;
      t0 = nowMs();
      await bb.client.exchange(second!, ctx.exchangeBody(ns));
      const secondMs = nowMs() - t0;
      cold.push({ firstMs, secondMs, jwksFetches });
      log(
        `  cold JWKS ${i + 1}/${settings.coldJwksReps}: first exchange ${firstMs.toFixed(1)} ms (${jwksFetches} JWKS fetch), second ${secondMs.toFixed(1)} ms`,
      );
    } finally {
      await bb.stop();
    }
  }
  await ctx.clearGrants(ns);

  return {
    tokensPerRound: n,
    rounds,
    bareThroughput: median(rounds.map((r) => r.bare)),
    brokerThroughput: median(rounds.map((r) => r.broker)),
    ratio: median(rounds.map((r) => r.ratio)),
    cold,
    coldFirstMs: median(cold.map((c) => c.firstMs)),
    coldSecondMs: median(cold.map((c) => c.secondMs)),
  };
};
