// Recording fakes for the action's dependencies: a core that logs every call in order (so tests
// can check that a secret was masked before anything else mentioned it), a scripted HTTP transport,
// and a virtual clock whose sleep advances time instead of waiting.
import type { ActionCore, Clock } from '../../../src/action/action-core.js';
import type { HttpRequest, HttpResponse, HttpTransport } from '../../../src/action/http-transport.js';
import type { ExchangeResponse } from '../../../src/shared/api.js';

export interface CoreCall {
  method: keyof ActionCore;
  args: string[];
}

export interface FakeCore extends ActionCore {
  calls: CoreCall[];
  inputs: Record<string, string>;
  state: Record<string, string>;
  outputs: Record<string, string>;
  exported: Record<string, string>;
  failed: string[];
  infos: string[];
  warnings: string[];
  secrets: string[];
}

export function fakeCore(inputs: Record<string, string> = {}, state: Record<string, string> = {}): FakeCore {
  const c: FakeCore = {
    calls: [],
    inputs,
    state,
    outputs: {},
    exported: {},
    failed: [],
    infos: [],
    warnings: [],
    secrets: [],
    getInput: (name) => {
      c.calls.push({ method: 'getInput', args: [name] });
      return (inputs[name] ?? '').trim();
    },
    getState: (name) => state[name] ?? '',
    info: (m) => {
      c.calls.push({ method: 'info', args: [m] });
      c.infos.push(m);
    },
    warning: (m) => {
      c.calls.push({ method: 'warning', args: [m] });
      c.warnings.push(m);
    },
    debug: (m) => c.calls.push({ method: 'debug', args: [m] }),
    setFailed: (m) => {
      c.calls.push({ method: 'setFailed', args: [m] });
      c.failed.push(m);
    },
    setSecret: (s) => {
      c.calls.push({ method: 'setSecret', args: [s] });
      c.secrets.push(s);
    },
    setOutput: (n, v) => {
      c.calls.push({ method: 'setOutput', args: [n, v] });
      c.outputs[n] = v;
    },
    exportVariable: (n, v) => {
      c.calls.push({ method: 'exportVariable', args: [n, v] });
      c.exported[n] = v;
    },
    saveState: (n, v) => {
      c.calls.push({ method: 'saveState', args: [n, v] });
      c.state[n] = v;
    },
  };
  return c;
}

export interface VirtualClock extends Clock {
  sleeps: number[];
}

export function virtualClock(start = Date.parse('2030-01-01T00:00:00Z'), random = 0.5): VirtualClock {
  let t = start;
  const clock: VirtualClock = {
    sleeps: [],
    now: () => t,
    sleep: async (ms) => {
      clock.sleeps.push(ms);
      t += ms;
    },
    random: () => random,
  };
  return clock;
}

export type Responder = (req: HttpRequest) => HttpResponse | Error | Promise<HttpResponse | Error>;

export interface ScriptedTransport {
  transport: HttpTransport;
  requests: HttpRequest[];
}

/** Answers requests with the next responder in the list (the last one repeats). */
export function scriptedTransport(...responders: Responder[]): ScriptedTransport {
  const requests: HttpRequest[] = [];
  return {
    requests,
    transport: async (req) => {
      requests.push(req);
      const responder = responders[Math.min(requests.length - 1, responders.length - 1)]!;
      const r = await responder(req);
      if (r instanceof Error) throw r;
      return r;
    },
  };
}

export const json = (status: number, body: unknown, headers: Record<string, string> = {}): HttpResponse => ({
  status,
  headers,
  body: JSON.stringify(body),
});

export const brokerError = (status: number, code: string, message: string, requestId = 'req-123') =>
  json(status, { error: { code, message, requestId } });

export const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.k8s-token-payload.k8s-token-signature-SECRET';

export function exchangeResponse(overrides: Partial<ExchangeResponse> = {}): ExchangeResponse {
  return {
    grantId: 'gha-1234-abcd',
    token: TOKEN,
    tokenExpiresAt: '2030-01-01T00:20:00Z',
    expiresAt: '2030-01-01T00:15:00Z',
    server: 'https://127.0.0.1:6443',
    certificateAuthorityData: Buffer.from(
      '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    ).toString('base64'),
    namespace: 'team-a',
    serviceAccount: 'gha-1234-abcd',
    role: 'deployer',
    rules: [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'patch'] }],
    ...overrides,
  };
}
