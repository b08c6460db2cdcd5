// IP addresses as the broker compares and logs them: one canonical text per address, so that the
// same client never appears under two spellings. node:net decides what an address is (isIP);
// this file only rewrites addresses it has already accepted.
import { isIP } from 'node:net';

export type IpFamily = 'ipv4' | 'ipv6';

/** `::ffff:a.b.c.d` (hex form after canonicalisation): an IPv4 client on a dual-stack socket. */
const IPV4_MAPPED = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;

/**
 * The canonical text of an IP address, or undefined when `text` is not one: IPv4 in dotted
 * decimal as node:net accepts it (no leading zeros, no short forms), IPv6 lower-case and
 * compressed (RFC 5952, as the WHATWG URL parser writes it), and an IPv4-mapped IPv6 address as
 * the IPv4 address it carries. Zone ids (`fe80::1%eth0`) are refused: they name a local interface,
 * not a client.
 */
export function canonicalAddress(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6 || text.includes('%')) return undefined;
  const compressed = new URL(`http://[${text}]`).hostname.slice(1, -1);
  const mapped = IPV4_MAPPED.exec(compressed);
  if (!mapped) return compressed;
  const [high, low] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

export function familyOf(canonical: string): IpFamily {
  return isIP(canonical) === 4 ? 'ipv4' : 'ipv6';
}

export const ADDRESS_BITS: Record<IpFamily, number> = { ipv4: 32, ipv6: 128 };

/** The address as a number (for prefix arithmetic); `canonical` must come from canonicalAddress. */
export function addressToBigInt(canonical: string): bigint {
  if (familyOf(canonical) === 'ipv4')
    return canonical.split('.').reduce((n, octet) => (n << 8n) | BigInt(octet), 0n);
  const [head = '', tail] = canonical.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return all.reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** The canonical text of the address `value` (the inverse of addressToBigInt). */
export function bigIntToAddress(value: bigint, family: IpFamily): string {
  if (family === 'ipv4') return [24n, 16n, 8n, 0n].map((shift) => Number((value >> shift) & 0xffn)).join('.');
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) =>
    ((value >> shift) & 0xffffn).toString(16),
  );
  return canonicalAddress(groups.join(':'))!;
}
