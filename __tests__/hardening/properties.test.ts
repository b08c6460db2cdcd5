// Property-based tests (fast-check) of the two pure pieces every grant depends on: the policy's
// glob matcher and claim matcher, and the derivation of object names and label values from claims.
// Seeds are fixed per run and printed by fast-check on failure, so a counterexample reproduces.
import { afterAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { matchGlob, globPatternProblem } from '../../src/broker/policy/glob.js';
import { matchesClaims, isWellFormedRef } from '../../src/broker/policy/matcher.js';
import {
  GRANT_ID_PATTERN,
  grantAnnotations,
  grantIdFor,
  grantLabels,
  labelValue,
  revokeObjectName,
} from '../../src/broker/naming.js';
import type { VerifiedClaims } from '../../src/broker/types.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/** A qualified label key: optional DNS-1123 subdomain prefix, then a name part of at most 63 chars. */
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const RUNS = { numRuns: 500 };
let checked = 0;
const count =
  <T extends unknown[]>(f: (...a: T) => void) =>
  (...a: T) => {
    checked += 1;
    f(...a);
  };

afterAll(() => console.log(`properties: ${checked} generated inputs checked`));

// ---- Arbitraries ----

const decimalId = fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String);
/** Claim strings as an attacker could send them: any Unicode, separators included. */
const anyClaim = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 });
const runTuple = fc.record({
  iss: fc.constantFrom('https://token.actions.githubusercontent.com', 'https://ghes.example/_services/token'),
  jti: fc.oneof(fc.uuid(), anyClaim),
  repository_id: decimalId,
  run_id: decimalId,
  run_attempt: fc.integer({ min: 1, max: 100 }).map(String),
});

const segChars = 'abcxyz019-_.';
const literalSegment = fc
  .string({ unit: fc.constantFrom(...segChars), minLength: 1, maxLength: 6 })
  .filter((s) => s !== '.' && s !== '..' && !s.includes('..'));
/** A segment of a glob: literal, with single stars, or `**`. */
const patternSegment = fc.oneof(
  { weight: 3, arbitrary: literalSegment },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.oneof(literalSegment, fc.constant('*')), { minLength: 1, maxLength: 3 })
      .map((p) => p.join('').replace(/\*{2,}/g, '*')),
  },
  { weight: 1, arbitrary: fc.constant('**') },
);
const pattern = fc.array(patternSegment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));

/** A value built to match `p`: each `*` filled with segment characters, each `**` with 1-3 segments. */
const matchingValue = (p: string) =>
  fc
    .tuple(
      fc.array(fc.string({ unit: fc.constantFrom(...'abc019'), maxLength: 4 }), {
        minLength: 64,
        maxLength: 64,
      }),
      fc.array(fc.array(literalSegment, { minLength: 1, maxLength: 3 }), { minLength: 8, maxLength: 8 }),
    )
    .map(([fills, multi]) => {
      let star = 0;
      let many = 0;
      return p
        .split('/')
        .map((seg) =>
          seg === '**'
            ? multi[many++ % multi.length]!.join('/')
            : seg.replace(/\*/g, () => fills[star++ % fills.length]!),
        )
        .join('/')
        .split('/')
        .map((seg) => (seg === '' ? 'e' : seg)) // a filled segment must not end up empty
        .join('/');
    });

// ---- The glob matcher ----

describe('glob matcher', () => {
  test('generated patterns are valid policy globs', () => {
    fc.assert(
      fc.property(
        pattern,
        count((p) => expect(globPatternProblem(p)).toBeUndefined()),
      ),
      RUNS,
    );
  });

  test('completeness: a value built from the pattern matches it', () => {
    fc.assert(
      fc.property(
        pattern.chain((p) => fc.tuple(fc.constant(p), matchingValue(p))),
        count(([p, v]) => {
          // A filled `*` that became "." or ".." is a trick segment the matcher refuses on purpose.
          fc.pre(!v.split('/').some((s) => s === '.' || s === '..' || s === ''));
          expect(matchGlob(p, v)).toBe(true);
        }),
      ),
      RUNS,
    );
  });

  test('a literal pattern matches exactly itself (no case folding, no prefix, no suffix)', () => {
    const literal = fc.array(literalSegment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
    fc.assert(
      fc.property(
        literal,
        literal,
        count((p, v) => {
          expect(matchGlob(p, v)).toBe(p === v);
          expect(matchGlob(p, `${p}/x`)).toBe(false);
          expect(matchGlob(p, `x${p}`)).toBe(false);
          if (p.toUpperCase() !== p) expect(matchGlob(p, p.toUpperCase())).toBe(false);
        }),
      ),
      RUNS,
    );
  });

  test('`*` never crosses a "/"; `**` needs at least one segment', () => {
    fc.assert(
      fc.property(
        literalSegment,
        literalSegment,
        literalSegment,
        count((a, b, c) => {
          expect(matchGlob(`${a}/*`, `${a}/${b}/${c}`)).toBe(false);
          expect(matchGlob(`${a}/*/${c}`, `${a}/${b}/${b}/${c}`)).toBe(false);
          expect(matchGlob(`${a}/**`, a)).toBe(false);
          expect(matchGlob(`${a}/**`, `${a}/${b}/${c}`)).toBe(true);
        }),
      ),
      RUNS,
    );
  });

  test('values with "..", "." or empty segments never match any pattern', () => {
    const trick = fc.constantFrom('..', '.', '');
    fc.assert(
      fc.property(
        pattern.chain((p) => fc.tuple(fc.constant(p), matchingValue(p))),
        fc.nat(),
        trick,
        count(([p, v], at, t) => {
          const segs = v.split('/');
          segs.splice(at % (segs.length + 1), 0, t);
          expect(matchGlob(p, segs.join('/'))).toBe(false);
        }),
      ),
      RUNS,
    );
  });

  test('pathological star patterns terminate and answer correctly', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 400 }),
        count((stars, len) => {
          const p = `${'*a'.repeat(stars)}*`;
          expect(matchGlob(p, `${'a'.repeat(len)}b`)).toBe(len >= stars);
          expect(matchGlob(p, 'b'.repeat(len))).toBe(false);
        }),
      ),
      { numRuns: 100 },
    );
  });
});

// ---- The claim matcher ----

describe('claim matcher', () => {
  const base = (over: Partial<VerifiedClaims> = {}): VerifiedClaims => ({
    iss: 'https://token.actions.githubusercontent.com',
    aud: 'k8s-ephemeral-access',
    jti: 'j',
    exp: 0,
    iat: 0,
    repository_id: '1',
    repository_owner_id: '2',
    repository: 'o/r',
    repository_owner: 'o',
    run_id: '3',
    run_attempt: '1',
    ref: 'refs/heads/main',
    event_name: 'push',
    ...over,
  });

  test('IDs match exactly: any other string (leading zeros, spaces, look-alikes) is refused', () => {
    fc.assert(
      fc.property(
        decimalId,
        fc.oneof(
          decimalId,
          anyClaim,
          decimalId.map((d) => `0${d}`),
          decimalId.map((d) => ` ${d}`),
        ),
        count((id, other) => {
          const match = { repository_id: [{ exact: id }] };
          expect(matchesClaims(match, base({ repository_id: other }))).toBe(other === id);
        }),
      ),
      RUNS,
    );
  });

  test('non-string claim values never match, whatever the rule says', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer(),
          fc.array(fc.string()),
          fc.dictionary(fc.string(), fc.string()),
          fc.constant(null),
        ),
        count((value) => {
          const claims = base({ ref: value as unknown as string });
          expect(matchesClaims({ ref: [{ glob: 'refs/heads/**' }] }, claims)).toBe(false);
          expect(matchesClaims({ ref: [{ exact: JSON.stringify(value) }] }, claims)).toBe(false);
        }),
      ),
      RUNS,
    );
  });

  test('a ref glob never matches a ref that git would refuse', () => {
    const hostileRef = fc
      .tuple(
        fc.array(literalSegment, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('..', '~1', '^', ':', ' ', '@{', '.lock', '\\', '?', '[', '//'),
      )
      .map(([segs, bad]) => `refs/heads/${segs.join('/')}${bad}${bad === '.lock' ? '' : 'x'}`);
    fc.assert(
      fc.property(
        hostileRef,
        count((ref) => {
          expect(isWellFormedRef(ref)).toBe(false);
          expect(matchesClaims({ ref: [{ glob: 'refs/heads/**' }] }, base({ ref }))).toBe(false);
        }),
      ),
      RUNS,
    );
  });
});

// ---- Names and labels ----

describe('name and label derivation', () => {
  test('grant ids and their revoke objects are always DNS-1123 labels', () => {
    fc.assert(
      fc.property(
        runTuple,
        count((t) => {
          const id = grantIdFor(t);
          expect(id).toMatch(GRANT_ID_PATTERN);
          for (const name of [id, revokeObjectName(id)]) {
            expect(name).toMatch(DNS1123_LABEL);
            expect(name.length).toBeLessThanOrEqual(63);
          }
          expect(grantIdFor({ ...t })).toBe(id); // deterministic: a replay maps to the same names
        }),
      ),
      RUNS,
    );
  });

  test('distinct runs, attempts and tokens give distinct grant ids (no ambiguous concatenation)', () => {
    fc.assert(
      fc.property(
        runTuple,
        runTuple,
        count((a, b) => {
          const same =
            a.iss === b.iss &&
            a.jti === b.jti &&
            a.repository_id === b.repository_id &&
            a.run_id === b.run_id &&
            a.run_attempt === b.run_attempt;
          expect(grantIdFor(a) === grantIdFor(b)).toBe(same);
        }),
      ),
      RUNS,
    );
    // Shifting characters between fields must not collide.
    const shifted = [
      { jti: 'a1', repository_id: '2', run_id: '3', run_attempt: '1' },
      { jti: 'a', repository_id: '12', run_id: '3', run_attempt: '1' },
      { jti: 'a', repository_id: '1', run_id: '23', run_attempt: '1' },
      { jti: 'a', repository_id: '1', run_id: '2', run_attempt: '31' },
    ].map((c) => grantIdFor({ iss: 'i', ...c }));
    expect(new Set(shifted).size).toBe(shifted.length);
  });

  test('label values are always valid, IDs pass through unchanged, other values hash without collisions', () => {
    fc.assert(
      fc.property(
        fc.oneof(decimalId, anyClaim, fc.string({ maxLength: 200 })),
        fc.oneof(anyClaim, fc.string({ maxLength: 200 })),
        count((a, b) => {
          for (const v of [a, b]) {
            const l = labelValue(v);
            expect(l.length).toBeLessThanOrEqual(63);
            expect(l).toMatch(LABEL_VALUE);
            if (/^[1-9][0-9]*$/.test(v) && v.length <= 63) expect(l).toBe(v);
          }
          if (a !== b) expect(labelValue(a)).not.toBe(labelValue(b));
        }),
      ),
      RUNS,
    );
  });

  test('every label of a grant is a valid key/value pair, for any claims; annotations are strings', () => {
    fc.assert(
      fc.property(
        runTuple,
        anyClaim,
        anyClaim,
        count((t, repository, ref) => {
          const claims = {
            ...t,
            aud: 'a',
            exp: 0,
            iat: 0,
            repository_owner_id: t.repository_id,
            repository,
            repository_owner: repository,
            ref,
            event_name: 'push',
            actor: repository,
            workflow: ref,
          } as VerifiedClaims;
          const labels = grantLabels(grantIdFor(t), claims);
          for (const [k, v] of Object.entries(labels)) {
            expect(k).toMatch(LABEL_KEY);
            expect(v).toMatch(LABEL_VALUE);
            expect(v.length).toBeLessThanOrEqual(63);
          }
          const annotations = grantAnnotations(claims, { expiresAt: new Date(0), role: 'r', ruleName: 'n' });
          for (const v of Object.values(annotations)) expect(typeof v).toBe('string');
        }),
      ),
      RUNS,
    );
  });
});
