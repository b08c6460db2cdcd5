// A tunnel's liveness: an HTTP/2 PING every interval, and a session whose peer does not answer
// within the same time is destroyed (a peer gone without a FIN would otherwise hold it open for
// good). Both ends of the edge's tunnels use it.
import type { Http2Session } from 'node:http2';

/** Pings `session` every `intervalMs` until it closes; destroys it when a ping goes unanswered. */
export function keepPinging(session: Http2Session, intervalMs: number): void {
  const ping = setInterval(() => {
    if (session.closed || session.destroyed) return;
    const timer = setTimeout(() => session.destroy(), intervalMs);
    timer.unref();
    if (!session.ping(() => clearTimeout(timer))) clearTimeout(timer);
  }, intervalMs);
  ping.unref();
  session.once('close', () => clearInterval(ping));
}
