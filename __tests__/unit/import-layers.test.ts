// The import check (scripts/check-import-cycles.mjs, part of `npm run lint`) passes on the tree and
// fails on a planted back arrow, a planted cycle, a side crossing and a file in no room: each
// planted in a copy of src/ that the check is pointed at with --root.
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '..', '..');
let copy: string;

beforeEach(() => {
  copy = mkdtempSync(join(tmpdir(), 'k8s-ea-layers-'));
  cpSync(join(repo, 'src'), join(copy, 'src'), { recursive: true });
});
afterEach(() => rmSync(copy, { recursive: true, force: true }));

const check = (root?: string) =>
  spawnSync('node', ['scripts/check-import-cycles.mjs', ...(root ? ['--root', root] : [])], {
    cwd: repo,
    encoding: 'utf8',
  });

test('the tree has no import cycle and no import against the layers', () => {
  const r = check();
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^no import cycles and no import against the layers in \d+ modules$/m);
  // The unchanged copy passes too: what fails below is the planted import alone.
  expect(check(copy).status).toBe(0);
});

test('a planted back arrow fails: the Kubernetes layer importing a route', () => {
  appendFileSync(
    join(copy, 'src/broker/kube/errors.ts'),
    "\nexport { findDuplicateKey } from '../http/strict-json.js';\n",
  );
  const r = check(copy);
  expect(r.status).toBe(1);
  expect(r.stderr).toContain(
    'import against the layers: src/broker/kube/errors.ts -> src/broker/http/strict-json.ts: broker/kube (floor 3) may not import broker/http (floor 6)',
  );
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
});

test('a planted cycle fails, even of type-only imports within one room', () => {
  appendFileSync(join(copy, 'src/broker/net/ip-address.ts'), "\nimport type {} from './cidr.js';\n");
  const r = check(copy);
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('import cycle among 2 module(s)');
  expect(r.stderr).toContain('src/broker/net/ip-address.ts -> src/broker/net/cidr.ts');
});

test('the broker importing the action fails, and so does a new room missing from the table', () => {
  appendFileSync(join(copy, 'src/broker/cli/serve.ts'), "\nimport type {} from '../../action/inputs.js';\n");
  writeFileSync(join(copy, 'src/broker/unlisted.ts'), 'export const x = 1;\n');
  const r = check(copy);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(
    /src\/broker\/cli\/serve\.ts -> src\/action\/inputs\.ts: broker\/cli \(floor \d+\) may not import action/,
  );
  expect(r.stderr).toContain('src/broker/unlisted.ts: in no room of the layer table');
});
