// Address ranges written as CIDR (10.0.0.0/8, 2001:db8::/32): read strictly, and matched with
// node:net's BlockList. Used by the policy's `sourceRanges` and the config's `trustedProxies`.
import { BlockList } from 'node:net';
import {
  ADDRESS_BITS,
  addressToBigInt,
  bigIntToAddress,
  canonicalAddress,
  familyOf,
  type IpFamily,
} from './ip-address.js';

export interface Cidr {
  /** The network address, canonical (ip-address.ts). */
  address: string;
  prefix: number;
  family: IpFamily;
}

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

/** A CIDR range, or what is wrong with the text (for a config error: says how to write it). */
export function parseCidr(text: string): { cidr: Cidr } | { problem: string } {
  const slash = text.indexOf('/');
  if (slash === -1) {
    const one = canonicalAddress(text);
    return {
      problem: one
        ? `has no prefix length; write ${one}/${ADDRESS_BITS[familyOf(one)]} for this one address`
        : 'is not a CIDR range such as 10.0.0.0/8 or 2001:db8::/32',
    };
  }
  const written = text.slice(0, slash);
  const address = canonicalAddress(written);
  if (!address)
    return { problem: `"${written}" is not an IPv4 or IPv6 address (no zone ids, no leading zeros)` };
  const family = familyOf(address);
  // Only an IPv4 address written as IPv6 changes family when canonicalised.
  if (family === 'ipv4' && written.includes(':'))
    return { problem: `is an IPv4-mapped IPv6 range; write the IPv4 range, e.g. ${address}/32` };
  const bits = ADDRESS_BITS[family];
  const prefixText = text.slice(slash + 1);
  const prefix = PREFIX.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (!(prefix <= bits))
    return { problem: `prefix length must be a whole number from 0 to ${bits} for ${family}` };
  // 10.1.2.3/8 is ambiguous: a typo for 10.1.2.3/32, or for 10.0.0.0/8. Make the admin say which.
  const value = addressToBigInt(address);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((value & hostMask) !== 0n) {
    const network = bigIntToAddress(value & ~hostMask, family);
    return {
      problem: `has address bits set beyond its /${prefix} prefix; write ${network}/${prefix}, or ${address}/${bits} for one address`,
    };
  }
  return { cidr: { address, prefix, family } };
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/** Whether an address lies in any of a list of ranges. */
export interface AddressSet {
  /** False for anything that is not an IP address (undefined, garbage). */
  has(address: string | undefined): boolean;
}

/**
 * A set of ranges; `ranges` must be valid (parseCidr accepted them: the config and policy readers
 * did). IPv4 and IPv6 are kept apart: BlockList alone would let an IPv6 range that covers
 * ::ffff:0:0/96 (such as ::/0) admit every IPv4 client, which no admin writing ::/0 means.
 */
export function createAddressSet(ranges: readonly string[]): AddressSet {
  const lists: Record<IpFamily, BlockList> = { ipv4: new BlockList(), ipv6: new BlockList() };
  for (const text of ranges) {
    const parsed = parseCidr(text);
    if ('problem' in parsed) throw new Error(`invalid CIDR ${JSON.stringify(text)}: ${parsed.problem}`);
    const { address, prefix, family } = parsed.cidr;
    lists[family].addSubnet(address, prefix, family);
  }
  return {
    has(text) {
      const address = text === undefined ? undefined : canonicalAddress(text);
      if (!address) return false;
      const family = familyOf(address);
      return lists[family].check(address, family);
    },
  };
}
