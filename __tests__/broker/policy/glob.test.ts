// Property tests of the segment-aware glob matcher (fast-check), plus its pattern rules.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { globPatternProblem, matchGlob } from '../../../src/broker/policy/glob.js';

/** Segments from a small alphabet, so random patterns and values actually collide. */
const segment = fc
  .string({ unit: fc.constantFrom('a', 'b', '.', '-'), minLength: 1, maxLength: 4 })
  .filter((s) => s !== '.' && s !== '..');
const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));
const patternSegment = fc.oneof(
  { weight: 4, arbitrary: segment },
  { weight: 2, arbitrary: fc.constantFrom('*', 'a*', '*b', 'a*b', '*.*') },
  { weight: 1, arbitrary: fc.constant('**') },
);
const pattern = fc.array(patternSegment, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));

/** Independent oracle: the same semantics written as a regular expression. */
function oracle(glob: string, value: string): boolean {
  const source = glob
    .split('/')
    .map((seg) =>
      seg === '**'
        ? '[^/]+(?:/[^/]+)*'
        : seg
            .split('*')
            .map((lit) => lit.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&'))
            .join('[^/]*'),
    )
    .join('/');
  return new RegExp(`^${source}$`).test(value);
}

describe('glob matcher properties', () => {
  test('agrees with an independent regular-expression oracle', () => {
    let matches = 0;
    fc.assert(
      fc.property(pattern, path, (p, v) => {
        expect(globPatternProblem(p)).toBeUndefined();
        const result = matchGlob(p, v);
        expect(result).toBe(oracle(p, v));
        if (result) matches += 1;
      }),
      { numRuns: 3000 },
    );
    // The generators must produce matching pairs too, or the comparison proves little.
    expect(matches).toBeGreaterThan(30);
  });

  test('a pattern without wildcards matches only itself', () => {
    fc.assert(
      fc.property(path, path, (p, v) => {
        expect(matchGlob(p, v)).toBe(p === v);
        expect(matchGlob(p, p)).toBe(true);
      }),
    );
  });

  test('* never matches across "/"', () => {
    fc.assert(
      fc.property(path, segment, segment, (prefix, x, y) => {
        expect(matchGlob(`${prefix}/*`, `${prefix}/${x}`)).toBe(true);
        expect(matchGlob(`${prefix}/*`, `${prefix}/${x}/${y}`)).toBe(false);
        expect(matchGlob(`${prefix}/a*`, `${prefix}/a${x}/${y}`)).toBe(false);
      }),
    );
  });

  test('without **, a match always has as many segments as the pattern', () => {
    fc.assert(
      fc.property(
        pattern.filter((p) => !p.split('/').includes('**')),
        path,
        (p, v) => {
          if (matchGlob(p, v)) expect(v.split('/').length).toBe(p.split('/').length);
        },
      ),
    );
  });

  test('** matches one or more whole segments, never zero', () => {
    fc.assert(
      fc.property(path, fc.array(segment, { minLength: 1, maxLength: 4 }), (prefix, rest) => {
        expect(matchGlob(`${prefix}/**`, `${prefix}/${rest.join('/')}`)).toBe(true);
        expect(matchGlob(`${prefix}/**`, prefix)).toBe(false);
      }),
    );
  });

  test('matching is anchored: extra text before or after never matches a literal pattern', () => {
    fc.assert(
      fc.property(path, segment, (p, extra) => {
        expect(matchGlob(p, `${extra}/${p}`)).toBe(false);
        expect(matchGlob(p, `${p}/${extra}`)).toBe(false);
        expect(matchGlob(p, `${p}${extra}`)).toBe(false);
      }),
    );
  });

  test('values with empty, "." or ".." segments never match, whatever the pattern', () => {
    const trick = fc.constantFrom('', '.', '..');
    fc.assert(
      fc.property(pattern, path, trick, path, (p, before, t, after) => {
        expect(matchGlob(p, `${before}/${t}/${after}`)).toBe(false);
      }),
    );
    expect(matchGlob('refs/heads/**', 'refs/heads/main/../x')).toBe(false);
    expect(matchGlob('refs/heads/**', 'refs/heads//x')).toBe(false);
    expect(matchGlob('refs/heads/*', 'refs/heads/')).toBe(false);
  });

  test('long adversarial inputs are decided correctly (no exponential backtracking)', () => {
    const value = `${'a/'.repeat(200)}b`;
    expect(matchGlob('**/**/**/**/**/**/c', value)).toBe(false);
    expect(matchGlob('*a*a*a*a*a*a*a*c', 'a'.repeat(2000))).toBe(false);
  });
});

describe('glob pattern rules', () => {
  test.each([
    ['refs/heads/?'],
    ['refs/heads/[ab]'],
    ['refs/heads/{a,b}'],
    ['refs/heads/a\\*'],
    ['refs/heads/a**'],
    ['refs/**x/y'],
    ['refs//heads'],
    ['/refs/heads'],
    ['refs/heads/'],
    ['refs/heads/../main'],
    ['refs/./heads'],
    [''],
  ])('%j is refused', (p) => {
    expect(globPatternProblem(p)).toEqual(expect.any(String));
  });

  test.each([['refs/heads/main'], ['refs/heads/*'], ['refs/heads/release/**'], ['refs/tags/v*.*'], ['**']])(
    '%j is accepted',
    (p) => {
      expect(globPatternProblem(p)).toBeUndefined();
    },
  );
});
