// Requests the job's GitHub OIDC token from the runner's token service, as @actions/core's
// getIDToken does (GET ACTIONS_ID_TOKEN_REQUEST_URL with `audience`, bearer
// ACTIONS_ID_TOKEN_REQUEST_TOKEN, JSON `{ "value": "<jwt>" }`). Why our own: the toolkit's version
// pulls @actions/http-client and undici into the main bundle, and evaluating them is most of the
// step's start-up time (measured in docs/benchmarks.md). Retries are the caller's (main-run.ts).
import type { HttpTransport } from './http-types.js';
import type { Env } from './inputs.js';

const TIMEOUT_MS = 10_000;

export function createIdTokenSource(
  env: Env,
  transport: HttpTransport,
): (audience: string) => Promise<string> {
  return async (audience) => {
    const requestUrl = env.ACTIONS_ID_TOKEN_REQUEST_URL;
    const requestToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
    // oidc-preflight.ts has already failed the step with the fix when these are missing.
    if (!requestUrl || !requestToken)
      throw new Error('ACTIONS_ID_TOKEN_REQUEST_URL or ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set');
    const url = new URL(requestUrl);
    url.searchParams.set('audience', audience);
    const res = await transport({
      method: 'GET',
      url,
      headers: { authorization: `Bearer ${requestToken}`, accept: 'application/json' },
      timeoutMs: TIMEOUT_MS,
    });
    // The body of a refusal is not shown: it is the token service's, and may echo the request.
    if (res.status !== 200) throw new Error(`the token service answered HTTP ${res.status}`);
    let value: unknown;
    try {
      value = (JSON.parse(res.body) as { value?: unknown }).value;
    } catch {
      throw new Error('the token service answered with something other than JSON');
    }
    if (typeof value !== 'string' || value.split('.').length !== 3)
      throw new Error('the token service answered without a token');
    return value;
  };
}
