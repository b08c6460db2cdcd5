// Reads the server name (SNI) of a TLS ClientHello, and nothing else: the edge picks the broker's
// listener by it and relays the bytes untouched, it never terminates TLS. Bounded: the ClientHello
// must sit in the first TLS record (at most 5 + 16384 bytes, which every client's first flight
// fits), and every length is checked against what was received before it is followed.

/** A TLS record header (5 bytes) plus the largest plaintext record: more is never needed. */
export const MAX_HELLO_BYTES = 5 + 16_384;

export type HelloRead =
  /** Not all of the first record yet: read on (up to MAX_HELLO_BYTES). */
  | { state: 'more' }
  /** A whole ClientHello; serverName is undefined when it names none. */
  | { state: 'done'; serverName: string | undefined }
  /** Not a TLS ClientHello, or one this parser will not follow: close the connection. */
  | { state: 'bad'; reason: string };

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXTENSION_SERVER_NAME = 0x0000;
const NAME_TYPE_HOST = 0x00;
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

class Malformed extends Error {}

/** A cursor over one bounded slice: reading past its end throws Malformed. */
class Cursor {
  constructor(
    private readonly buf: Buffer,
    private pos: number,
    private readonly end: number,
  ) {}
  get left(): number {
    return this.end - this.pos;
  }
  u8(): number {
    return this.take(1)[0]!;
  }
  u16(): number {
    return this.take(2).readUInt16BE(0);
  }
  u24(): number {
    const b = this.take(3);
    return (b[0]! << 16) | b.readUInt16BE(1);
  }
  take(n: number): Buffer {
    if (n > this.left) throw new Malformed('a length runs past its enclosing field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /** A sub-cursor over the next `n` bytes (a length-prefixed field), consumed from this one. */
  sub(n: number): Cursor {
    const start = this.pos;
    this.take(n);
    return new Cursor(this.buf, start, start + n);
  }
}

/** The server name in `received`, the first bytes of a connection, or what is still missing. */
export function readServerName(received: Buffer): HelloRead {
  if (received.length >= 1 && received[0] !== RECORD_HANDSHAKE)
    return { state: 'bad', reason: 'not a TLS handshake' };
  if (received.length >= 2 && received[1] !== 3) return { state: 'bad', reason: 'not a TLS record version' };
  if (received.length < 5) return { state: 'more' };
  const recordLength = received.readUInt16BE(3);
  if (recordLength === 0 || recordLength > MAX_HELLO_BYTES - 5)
    return { state: 'bad', reason: 'TLS record length out of range' };
  if (received.length < 5 + recordLength) return { state: 'more' };
  try {
    return { state: 'done', serverName: serverNameOf(new Cursor(received, 5, 5 + recordLength)) };
  } catch (err) {
    if (err instanceof Malformed) return { state: 'bad', reason: err.message };
    throw err;
  }
}

function serverNameOf(record: Cursor): string | undefined {
  if (record.u8() !== HANDSHAKE_CLIENT_HELLO)
    throw new Malformed('the first handshake message is no ClientHello');
  const length = record.u24();
  // A ClientHello split over several records is legal but no client sends one this small: refuse
  // it rather than buffer more.
  if (length > record.left) throw new Malformed('the ClientHello does not fit in its first record');
  const hello = record.sub(length);
  hello.take(2 + 32); // legacy_version, random
  hello.take(hello.u8()); // legacy_session_id
  const suites = hello.u16();
  if (suites === 0 || suites % 2 !== 0) throw new Malformed('bad cipher suite list');
  hello.take(suites);
  hello.take(hello.u8()); // legacy_compression_methods
  if (hello.left === 0) return undefined; // no extensions at all
  const extensions = hello.sub(hello.u16());
  if (hello.left !== 0) throw new Malformed('bytes after the extensions');
  const seen = new Set<number>();
  let serverName: string | undefined;
  while (extensions.left > 0) {
    const type = extensions.u16();
    const body = extensions.sub(extensions.u16());
    if (seen.has(type)) throw new Malformed('an extension appears twice');
    seen.add(type);
    if (type === EXTENSION_SERVER_NAME) serverName = hostNameOf(body);
  }
  return serverName;
}

function hostNameOf(body: Cursor): string {
  const list = body.sub(body.u16());
  if (body.left !== 0 || list.left === 0) throw new Malformed('bad server_name extension');
  let host: string | undefined;
  while (list.left > 0) {
    const type = list.u8();
    const name = list.take(list.u16());
    if (type !== NAME_TYPE_HOST) continue;
    if (host !== undefined) throw new Malformed('two host names in server_name');
    host = name.toString('latin1').toLowerCase();
    // RFC 6066: no trailing dot; a host name, never an address or binary.
    if (!HOST_NAME.test(host)) throw new Malformed('server_name is not a DNS host name');
  }
  if (host === undefined) throw new Malformed('server_name names no host');
  return host;
}
