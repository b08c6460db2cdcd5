// Reads the policy file named in the broker config: at start, and again whenever it changes
// (policy-reload.ts). The digest says which version is running (metrics, logs).
import { createHash } from 'node:crypto';
import { readOperatorFile } from '../yaml-fields/read-file.js';
import { parsePolicy, type PolicyContext } from './parse-policy.js';
import type { Policy } from './types.js';

export interface PolicyVersion {
  policy: Policy;
  /** SHA-256 of the file's bytes, hex. */
  sha256: string;
}

export const policyDigest = (text: string | Buffer): string =>
  createHash('sha256').update(text).digest('hex');

/** The file's bytes; throws ConfigError naming the file when it cannot be read. */
export function readPolicyText(path: string): Buffer {
  return readOperatorFile(path, 'policy file');
}

/** Parses bytes read by readPolicyText; throws ConfigError. */
export function parsePolicyVersion(bytes: Buffer, path: string, context: PolicyContext = {}): PolicyVersion {
  return { policy: parsePolicy(bytes.toString('utf8'), path, context), sha256: policyDigest(bytes) };
}

export function loadPolicyVersion(path: string, context: PolicyContext = {}): PolicyVersion {
  return parsePolicyVersion(readPolicyText(path), path, context);
}

export function loadPolicy(path: string, context: PolicyContext = {}): Policy {
  return loadPolicyVersion(path, context).policy;
}
