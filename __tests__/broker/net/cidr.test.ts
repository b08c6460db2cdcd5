// CIDR ranges and addresses as the broker reads them: strict parsing with a fix in every problem,
// one canonical spelling per address, and matching that never mixes IPv4 and IPv6.
import { describe, expect, test } from '@jest/globals';
import { createAddressSet, formatCidr, parseCidr } from '../../../src/broker/net/cidr.js';
import { canonicalAddress } from '../../../src/broker/net/ip-address.js';

describe('canonicalAddress', () => {
  test.each([
    ['192.0.2.1', '192.0.2.1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['::1', '::1'],
    ['::', '::'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::FFFF:7f00:1', '127.0.0.1'],
    ['::ffff:10.255.0.9', '10.255.0.9'],
    // IPv4-compatible (deprecated) and NAT64 addresses are IPv6 addresses, not IPv4 ones.
    ['::10.0.0.1', '::a00:1'],
    ['64:ff9b::10.0.0.1', '64:ff9b::a00:1'],
  ])('%s → %s', (text, canonical) => {
    expect(canonicalAddress(text)).toBe(canonical);
  });

  test.each([
    '',
    ' 192.0.2.1',
    '192.0.2.1 ',
    '010.0.0.1',
    '127.1',
    '0x7f.0.0.1',
    '1.2.3.256',
    '[::1]',
    'fe80::1%eth0',
    '192.0.2.1:80',
    'localhost',
    '::ffff:1.2.3.04',
    '1.2.3.4\n',
  ])('%j is not an address', (text) => {
    expect(canonicalAddress(text)).toBeUndefined();
  });
});

describe('parseCidr', () => {
  test.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['192.0.2.7/32', '192.0.2.7/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['2001:db8:0:0::/64', '2001:db8::/64'],
    ['::/0', '::/0'],
    ['::1/128', '::1/128'],
  ])('%s is read as %s', (text, canonical) => {
    const parsed = parseCidr(text);
    expect('cidr' in parsed && formatCidr(parsed.cidr)).toBe(canonical);
  });

  test.each([
    ['10.1.2.3', 'has no prefix length; write 10.1.2.3/32 for this one address'],
    ['2001:db8::1', 'has no prefix length; write 2001:db8::1/128 for this one address'],
    ['10.1.2.3/8', 'has address bits set beyond its /8 prefix; write 10.0.0.0/8, or 10.1.2.3/32'],
    ['2001:db8::1/32', 'write 2001:db8::/32, or 2001:db8::1/128'],
    ['192.168.1.1/23', 'write 192.168.0.0/23'],
    ['10.0.0.0/33', 'from 0 to 32 for ipv4'],
    ['::/129', 'from 0 to 128 for ipv6'],
    ['10.0.0.0/08', 'prefix length must be'],
    ['10.0.0.0/+8', 'prefix length must be'],
    ['10.0.0.0/', 'prefix length must be'],
    ['10.0.0.0/8/8', 'prefix length must be'],
    ['10.0.0.0/ 8', 'prefix length must be'],
    ['10.0.0/8', '"10.0.0" is not an IPv4 or IPv6 address'],
    ['010.0.0.0/8', 'is not an IPv4 or IPv6 address'],
    ['fe80::%eth0/64', 'is not an IPv4 or IPv6 address'],
    ['::ffff:10.0.0.0/104', 'IPv4-mapped IPv6 range; write the IPv4 range'],
    ['example.com/32', 'is not an IPv4 or IPv6 address'],
    ['anything', 'is not a CIDR range such as 10.0.0.0/8'],
  ])('%j is refused: %s', (text, problem) => {
    const parsed = parseCidr(text);
    expect('problem' in parsed && parsed.problem).toContain(problem);
  });
});

describe('createAddressSet', () => {
  const set = createAddressSet(['10.0.0.0/8', '192.0.2.7/32', '2001:db8::/32']);

  test.each([
    ['10.0.0.0', true],
    ['10.255.255.255', true],
    ['11.0.0.0', false],
    ['9.255.255.255', false],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['2001:db8:ffff::1', true],
    ['2001:DB8::1', true],
    ['2001:db9::1', false],
    // A dual-stack socket reports IPv4 clients in IPv4-mapped form: the same client.
    ['::ffff:10.1.2.3', true],
    ['::ffff:a01:203', true],
    ['::ffff:11.1.2.3', false],
  ])('%s → %s', (address, inside) => {
    expect(set.has(address)).toBe(inside);
  });

  test('anything that is not an address is outside every set', () => {
    const all = createAddressSet(['0.0.0.0/0', '::/0']);
    for (const text of [undefined, '', 'unknown', '10.0.0.1, 10.0.0.2', '[::1]', 'fe80::1%eth0'])
      expect([text, all.has(text)]).toEqual([text, false]);
    expect(all.has('203.0.113.9')).toBe(true);
    expect(all.has('2001:db8::9')).toBe(true);
  });

  test('IPv6 ranges never admit IPv4 clients, nor IPv4 ranges IPv6 ones', () => {
    // BlockList on its own would answer true here: it compares IPv4 as ::ffff:a.b.c.d.
    expect(createAddressSet(['::/0']).has('10.0.0.1')).toBe(false);
    expect(createAddressSet(['::/0']).has('::ffff:10.0.0.1')).toBe(false);
    expect(createAddressSet(['0.0.0.0/0']).has('2001:db8::1')).toBe(false);
  });

  test('an empty set holds nothing', () => {
    expect(createAddressSet([]).has('127.0.0.1')).toBe(false);
  });

  test('refuses a range parseCidr would refuse (callers validate first)', () => {
    expect(() => createAddressSet(['10.1.2.3/8'])).toThrow('invalid CIDR "10.1.2.3/8"');
  });
});
