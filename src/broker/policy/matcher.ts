// Does a rule's `match` block accept these claims? Exact string comparison (no case folding, no
// Unicode normalisation), globs only where the policy wrote `{ glob: ... }`, and refs that look
// like path tricks never match a glob.
import type { VerifiedClaims } from '../types.js';
import { matchGlob } from './glob.js';
import { MATCH_FIELDS, type MatchField, type RuleMatch, type ValueMatcher } from './types.js';

// eslint-disable-next-line no-control-regex
const UNSAFE_FOR_GLOB = /[\u0000-\u001f\u007f-\u009f]|\.\.|\/\//;

/**
 * A git ref as git itself would accept it (a subset of `git check-ref-format`): starts with refs/,
 * no empty or "."-prefixed components, no "..", none of space ~ ^ : ? * [ \ or "@{", no ".lock" component
 * ending, no trailing "." or "/".
 */
export function isWellFormedRef(ref: string): boolean {
  if (!ref.startsWith('refs/') || ref.endsWith('/') || ref.endsWith('.')) return false;
  if (UNSAFE_FOR_GLOB.test(ref) || /[ ~^:?*[\\]|@\{/.test(ref)) return false;
  return ref.split('/').every((part) => part !== '' && !part.startsWith('.') && !part.endsWith('.lock'));
}

/** Whether a claim value may be compared against a glob at all. */
function globbable(field: MatchField, value: string): boolean {
  if (UNSAFE_FOR_GLOB.test(value)) return false;
  return field !== 'ref' || isWellFormedRef(value);
}

function matchesOne(field: MatchField, matcher: ValueMatcher, value: string): boolean {
  if ('exact' in matcher) return value === matcher.exact;
  return globbable(field, value) && matchGlob(matcher.glob, value);
}

/** Whether the claim `field` is a string that one of the accepted values matches. */
export function fieldMatches(
  field: MatchField,
  accepted: readonly ValueMatcher[],
  claims: VerifiedClaims,
): boolean {
  const value: unknown = claims[field];
  return typeof value === 'string' && accepted.some((m) => matchesOne(field, m, value));
}

/** Every field the rule lists must be present in the claims as a string and match one listed value. */
export function matchesClaims(match: RuleMatch, claims: VerifiedClaims): boolean {
  return MATCH_FIELDS.every((field) => {
    const accepted = match[field];
    return accepted === undefined || fieldMatches(field, accepted, claims);
  });
}
