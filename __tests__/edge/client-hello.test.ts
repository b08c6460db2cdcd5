// The edge's SNI reader against real ClientHellos (Node's own TLS client writes them), every prefix
// of them, hand-made malformed ones, and random bytes (it must never throw nor read out of bounds).
import { describe, expect, it } from '@jest/globals';
import { Duplex } from 'node:stream';
import { connect } from 'node:tls';
import fc from 'fast-check';
import { MAX_HELLO_BYTES, readServerName } from '../../src/broker/edge-relay/client-hello.js';

/** The first flight a real TLS client sends for `servername` (undefined: no SNI). */
async function realHello(servername: string | undefined, ALPNProtocols?: string[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let done!: () => void;
  const written = new Promise<void>((r) => (done = r));
  const sink = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      done();
      cb();
    },
  });
  const socket = connect({ socket: sink, ...(servername !== undefined && { servername }), ALPNProtocols });
  socket.on('error', () => {});
  await written;
  socket.destroy();
  return Buffer.concat(chunks);
}

/** A ClientHello record with the given extensions block (raw bytes after the compression methods). */
function helloWith(extensions: Buffer | undefined): Buffer {
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32),
    Buffer.from([0]), // session id
    Buffer.from([0, 2, 0x13, 0x01]), // one cipher suite
    Buffer.from([1, 0]), // compression: null
    ...(extensions ? [u16(extensions.length), extensions] : []),
  ]);
  const handshake = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(handshake.length), handshake]);
}
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
function sniExtension(...names: [number, string][]): Buffer {
  const list = Buffer.concat(
    names.map(([t, n]) => Buffer.concat([Buffer.from([t]), u16(n.length), Buffer.from(n)])),
  );
  const body = Buffer.concat([u16(list.length), list]);
  return Buffer.concat([u16(0), u16(body.length), body]);
}

describe('readServerName', () => {
  it("reads the server name of Node's own ClientHello, lower-cased", async () => {
    const hello = await realHello('Gateway.Example.com', ['h2', 'http/1.1']);
    expect(readServerName(hello)).toEqual({ state: 'done', serverName: 'gateway.example.com' });
  });

  it('says done with no name when the client sends no SNI', async () => {
    expect(readServerName(await realHello(undefined))).toEqual({ state: 'done', serverName: undefined });
  });

  it('asks for more on every proper prefix of a real ClientHello', async () => {
    const hello = await realHello('broker.example.com');
    for (let n = 0; n < hello.length; n += 1)
      expect(readServerName(hello.subarray(0, n))).toEqual({ state: 'more' });
  });

  it('refuses what is not TLS at the first byte (a plain HTTP request)', () => {
    expect(readServerName(Buffer.from('GET / HTTP/1.1\r\n'))).toMatchObject({ state: 'bad' });
    expect(readServerName(Buffer.from([0x16, 2]))).toMatchObject({ state: 'bad' });
  });

  it('refuses a record longer than TLS allows, without waiting for it', () => {
    expect(readServerName(Buffer.from([0x16, 3, 1, 0x40, 0x01]))).toMatchObject({ state: 'bad' });
    expect(MAX_HELLO_BYTES).toBe(16_389);
  });

  it('refuses duplicate extensions, two host names, a name that is not a DNS host, and inner lengths that overrun', () => {
    const sni = sniExtension([0, 'a.example']);
    expect(readServerName(helloWith(Buffer.concat([sni, sni])))).toMatchObject({ state: 'bad' });
    expect(readServerName(helloWith(sniExtension([0, 'a.example'], [0, 'b.example'])))).toMatchObject({
      state: 'bad',
    });
    for (const name of ['a.example.', '10.0.0.1/x', 'a b', '', 'a'.repeat(64) + '.example'])
      expect(readServerName(helloWith(sniExtension([0, name])))).toMatchObject({ state: 'bad' });
    const overrun = helloWith(sniExtension([0, 'a.example']));
    overrun.writeUInt16BE(0xffff, overrun.length - 'a.example'.length - 2);
    expect(readServerName(overrun)).toMatchObject({ state: 'bad' });
  });

  it('reads a hand-made hello: no extensions, an unknown name type skipped', () => {
    expect(readServerName(helloWith(undefined))).toEqual({ state: 'done', serverName: undefined });
    expect(readServerName(helloWith(sniExtension([7, 'x'], [0, 'b.example'])))).toEqual({
      state: 'done',
      serverName: 'b.example',
    });
  });

  it('never throws on random or mutated input', async () => {
    const hello = await realHello('broker.example.com');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expect(['more', 'done', 'bad']).toContain(readServerName(Buffer.from(bytes)).state);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.nat(hello.length - 1), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const mutated = Buffer.from(hello);
        mutated[at] = value;
        expect(['more', 'done', 'bad']).toContain(readServerName(mutated).state);
      }),
      { numRuns: 2000 },
    );
  });
});
