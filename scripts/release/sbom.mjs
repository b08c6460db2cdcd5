// The image's SPDX 2.3 SBOM, written from what the build put in: the Debian packages and Node pinned
// in scripts/image/lock.json, and the npm packages esbuild bundled into the broker (its metafile,
// with versions from package-lock.json). A scanner of the finished image cannot see the bundle's npm
// packages (one JavaScript file), so the build's own inputs are the exact list; the release script
// still checks the result against the image (every package owning files in it is listed).
import { createHash } from 'node:crypto';

/** Where each Debian pool lives: security updates come from their own archive. */
const debianUrl = (filename) =>
  `http://deb.debian.org/${filename.startsWith('pool/updates/') ? 'debian-security' : 'debian'}/${filename}`;

/** `node_modules/a/node_modules/@s/b/x.js` → `node_modules/a/node_modules/@s/b` (the package's lock key). */
export function packageKeyOf(input) {
  const m = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
  return m ? m[1] : undefined;
}

/** An SPDX identifier: letters, digits, '.' and '-' only. */
const spdxId = (kind, name) => `SPDXRef-${kind}-${name.replace(/[^A-Za-z0-9.-]/g, '-')}`;

/** An npm integrity string (sha512-<base64>) as an SPDX checksum. */
function integrityChecksum(integrity) {
  const m = /^sha512-(.+)$/.exec(integrity ?? '');
  return m?.[1] ? [{ algorithm: 'SHA512', checksumValue: Buffer.from(m[1], 'base64').toString('hex') }] : [];
}

const purl = (locator) => [
  { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: locator },
];

/**
 * @param {{
 *   arch: 'amd64' | 'arm64',
 *   imageName: string,          // e.g. ghcr.io/org/broker
 *   imageDigest: string,        // sha256:…
 *   version: string,
 *   created: string,            // ISO time of the source commit: the same inputs give the same document
 *   lock: any,                  // scripts/image/lock.json
 *   bundleInputs: string[],     // the broker bundle's esbuild metafile input paths
 *   packageLock: any,           // package-lock.json
 * }} o
 */
export function imageSbom(o) {
  const debian = o.lock.debian[o.arch].map((p) => ({
    SPDXID: spdxId('deb', p.package),
    name: p.package,
    versionInfo: p.version,
    downloadLocation: debianUrl(p.filename),
    filesAnalyzed: false,
    checksums: [{ algorithm: 'SHA256', checksumValue: p.sha256 }],
    externalRefs: purl(
      `pkg:deb/debian/${encodeURIComponent(p.package)}@${encodeURIComponent(p.version)}?arch=${p.architecture}&distro=debian-12`,
    ),
  }));
  const nodePin = o.lock.node[o.arch];
  const node = {
    SPDXID: spdxId('node', nodePin.package),
    name: 'node',
    versionInfo: nodePin.version,
    downloadLocation: nodePin.tarball,
    filesAnalyzed: false,
    checksums: integrityChecksum(nodePin.integrity),
    externalRefs: purl(`pkg:npm/${nodePin.package}@${nodePin.version}`),
  };
  const npmKeys = [...new Set(o.bundleInputs.map(packageKeyOf).filter(Boolean))].sort();
  const npm = npmKeys.map((key) => {
    const entry = o.packageLock.packages?.[key];
    if (!entry?.version)
      throw new Error(`package-lock.json has no version for ${key} (bundled into the broker)`);
    const name = key.replace(/^.*node_modules\//, '');
    return {
      SPDXID: spdxId('npm', key.replace(/node_modules\//g, '')),
      name,
      versionInfo: entry.version,
      downloadLocation: entry.resolved ?? 'NOASSERTION',
      filesAnalyzed: false,
      checksums: integrityChecksum(entry.integrity),
      licenseDeclared: entry.license ?? 'NOASSERTION',
      externalRefs: purl(`pkg:npm/${name.replace(/^@/, '%40')}@${entry.version}`),
    };
  });
  const image = {
    SPDXID: 'SPDXRef-image',
    name: o.imageName,
    versionInfo: o.version,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    checksums: [{ algorithm: 'SHA256', checksumValue: o.imageDigest.replace(/^sha256:/, '') }],
    primaryPackagePurpose: 'CONTAINER',
    externalRefs: purl(
      `pkg:oci/${o.imageName.split('/').pop()}@${encodeURIComponent(o.imageDigest)}?arch=${o.arch}`,
    ),
  };
  const contained = [...debian, node, ...npm];
  const namespaceId = createHash('sha256').update(`${o.imageName}@${o.imageDigest}`).digest('hex');
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${o.imageName}@${o.imageDigest} (linux/${o.arch})`,
    documentNamespace: `https://k8s-ephemeral-access.io/spdx/${namespaceId}`,
    creationInfo: { created: o.created, creators: ['Tool: k8s-ephemeral-access-release'] },
    packages: [image, ...contained],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: image.SPDXID },
      ...contained.map((p) => ({
        spdxElementId: image.SPDXID,
        relationshipType: 'CONTAINS',
        relatedSpdxElement: p.SPDXID,
      })),
    ],
  };
}
