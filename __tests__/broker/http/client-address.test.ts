// clientAddressOf() against real sockets: raw requests, so the headers are exactly what a hostile
// client sends (repeated headers, garbage, IPv6, IPv4 on a dual-stack socket).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { clientAddressOf, type ClientAddress } from '../../../src/broker/http/client-address.js';
import { createAddressSet, type AddressSet } from '../../../src/broker/net/cidr.js';

let trusted: AddressSet | undefined;
let server: Server;
let port: number;

beforeAll(async () => {
  // Dual-stack: IPv4 clients arrive as ::ffff:127.0.0.1, IPv6 ones as ::1.
  server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(clientAddressOf(req, trusted)));
  });
  await new Promise<void>((r) => server.listen(0, '::', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** One raw HTTP/1.1 request with these header lines; the answer's body. */
function ask(headerLines: string[], from = '127.0.0.1', trust?: string[]): Promise<ClientAddress> {
  trusted = trust && createAddressSet(trust);
  return new Promise((resolve, reject) => {
    const socket = connect(port, from);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => (data += d));
    socket.on('error', reject);
    socket.on('end', () => resolve(JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)) as ClientAddress));
    socket.write(
      ['GET / HTTP/1.1', 'Host: broker', 'Connection: close', ...headerLines, '', ''].join('\r\n'),
    );
  });
}

const LOOPBACK = ['127.0.0.0/8', '::1/128'];

describe('an untrusted peer is the client, whatever it says', () => {
  test('no trusted proxies (the default): X-Forwarded-For is ignored', async () => {
    expect(await ask(['X-Forwarded-For: 10.9.9.9'])).toEqual({ address: '127.0.0.1' });
    expect(await ask(['X-Forwarded-For: 10.9.9.9'], '127.0.0.1', [])).toEqual({ address: '127.0.0.1' });
  });

  test('trusted proxies elsewhere: a peer outside them is not one', async () => {
    const spoof = ['X-Forwarded-For: 10.9.9.9', 'X-Real-IP: 10.9.9.9', 'Forwarded: for=10.9.9.9'];
    expect(await ask(spoof, '127.0.0.1', ['192.0.2.0/24'])).toEqual({ address: '127.0.0.1' });
    expect(await ask(spoof, '::1', ['127.0.0.0/8'])).toEqual({ address: '::1' });
  });

  test('an IPv4 client on a dual-stack socket is reported as IPv4', async () => {
    expect(await ask([])).toEqual({ address: '127.0.0.1' });
    expect(await ask([], '::1')).toEqual({ address: '::1' });
  });
});

describe('a trusted peer: X-Forwarded-For read from the right', () => {
  test('the entry the proxy appended is the client', async () => {
    expect(await ask(['X-Forwarded-For: 203.0.113.9'], '127.0.0.1', LOOPBACK)).toEqual({
      address: '203.0.113.9',
      proxy: '127.0.0.1',
    });
  });

  test('entries the client wrote (left of the proxy’s) are never read', async () => {
    // The client sent "X-Forwarded-For: 10.0.0.1" itself; the proxy appended what it saw.
    expect(await ask(['X-Forwarded-For: 10.0.0.1, 203.0.113.9'], '127.0.0.1', LOOPBACK)).toMatchObject({
      address: '203.0.113.9',
    });
    // Garbage to the left of the client is the client's business.
    expect(
      await ask(['X-Forwarded-For: not-an-ip, , 999.1.1.1, 203.0.113.9'], '127.0.0.1', LOOPBACK),
    ).toMatchObject({ address: '203.0.113.9' });
  });

  test('trusted hops are skipped: the first untrusted entry from the right is the client', async () => {
    const chain = ['X-Forwarded-For: 10.0.0.1, 198.51.100.4, 192.0.2.10, 192.0.2.11'];
    expect(await ask(chain, '127.0.0.1', [...LOOPBACK, '192.0.2.0/24'])).toEqual({
      address: '198.51.100.4',
      proxy: '127.0.0.1',
    });
  });

  test('repeated headers are one list, in order: the last header is the nearest hop', async () => {
    const headers = ['X-Forwarded-For: 10.0.0.1', 'X-Forwarded-For: 10.0.0.2, 203.0.113.9'];
    expect(await ask(headers, '127.0.0.1', LOOPBACK)).toMatchObject({ address: '203.0.113.9' });
    // A client that adds a header of its own after the proxy's gains nothing: it is still left of
    // what the proxy appends (a proxy that appends a new header puts it last).
    const late = ['X-Forwarded-For: 10.0.0.1', 'X-Forwarded-For: 203.0.113.9'];
    expect(await ask(late, '127.0.0.1', LOOPBACK)).toMatchObject({ address: '203.0.113.9' });
  });

  test('IPv6 entries, with and without ports, are canonical; mapped IPv4 is IPv4', async () => {
    const cases: [string, string][] = [
      ['2001:DB8:0:0::7', '2001:db8::7'],
      ['[2001:db8::7]', '2001:db8::7'],
      ['[2001:db8::7]:443', '2001:db8::7'],
      ['203.0.113.9:51234', '203.0.113.9'],
      ['::ffff:203.0.113.9', '203.0.113.9'],
      ['[::ffff:cb00:7109]:80', '203.0.113.9'],
    ];
    for (const [entry, address] of cases)
      expect([entry, await ask([`X-Forwarded-For: ${entry}`], '::1', LOOPBACK)]).toEqual([
        entry,
        { address, proxy: '::1' },
      ]);
  });

  test('a mapped peer matches IPv4 trusted ranges', async () => {
    // The socket reports ::ffff:127.0.0.1; the trusted range is written as IPv4.
    expect(await ask(['X-Forwarded-For: 203.0.113.9'], '127.0.0.1', ['127.0.0.1/32'])).toMatchObject({
      address: '203.0.113.9',
    });
  });

  test('garbage where the proxy should have written an address: no client address at all', async () => {
    for (const value of [
      'unknown',
      '203.0.113.9, ',
      '203.0.113.9,,',
      'fe80::1%eth0',
      '203.0.113.9 203.0.113.10',
      '0x7f.0.0.1',
      '2001:db8::7::1',
      '[203.0.113.9]',
      '203.0.113.9:99999',
      '',
    ])
      expect([value, await ask([`X-Forwarded-For: ${value}`], '127.0.0.1', LOOPBACK)]).toEqual([
        value,
        { address: undefined, proxy: '127.0.0.1' },
      ]);
  });

  test('every entry trusted: the left-most is the client', async () => {
    expect(
      await ask(['X-Forwarded-For: 192.0.2.5, 192.0.2.10'], '127.0.0.1', [...LOOPBACK, '192.0.2.0/24']),
    ).toMatchObject({ address: '192.0.2.5' });
  });

  test('a trusted peer that forwards nothing is itself the client', async () => {
    expect(await ask([], '127.0.0.1', LOOPBACK)).toEqual({ address: '127.0.0.1' });
  });
});
