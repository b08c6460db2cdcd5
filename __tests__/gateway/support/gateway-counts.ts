// The gateway counts and audits a forwarded call when its answer closes, which can come after the
// client has read the answer. Tests that compare "forwarded" counts before and after a refused call
// first wait for every open stream to close, or a late count of an earlier call reads as a leak.
import { waitFor } from '../../../test/support/cluster.js';
import type { InProcessBroker } from '../../../test/support/in-process-broker.js';

/** Calls the gateway forwarded (or tried to): every counted result but a refusal. */
export async function forwardedCalls(broker: InProcessBroker): Promise<number> {
  return (await broker.metrics.gatewayRequests.get()).values
    .filter((v) => v.labels.result !== 'refused')
    .reduce((sum, v) => sum + v.value, 0);
}

/** Waits until the gateway has no stream open, so every call made so far is counted and has its audit line. */
export async function untilGatewayIdle(broker: InProcessBroker): Promise<void> {
  await waitFor('the gateway to close its streams', async () => {
    const [open] = (await broker.metrics.gatewayOpenStreams.get()).values;
    return (open?.value ?? 0) === 0 ? true : undefined;
  });
}

/**
 * Probes until the gateway forwards a call of a new grant (its watch has seen the grant), then waits
 * until it is idle: the probes' own counts and audit lines are in before the caller counts its own.
 */
export async function untilGatewayAccepts(
  broker: InProcessBroker,
  probe: () => Promise<{ status: number }>,
  what = 'the gateway to accept the grant',
): Promise<void> {
  await waitFor(what, async () => ((await probe()).status === 200 ? true : undefined));
  await untilGatewayIdle(broker);
}
