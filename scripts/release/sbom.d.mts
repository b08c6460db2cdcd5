// Types of sbom.mjs, for the TypeScript tests.
import type { Lock } from '../image/contents.mjs';

export interface SbomPackage {
  SPDXID: string;
  name: string;
  versionInfo: string;
  downloadLocation: string;
  filesAnalyzed: false;
  checksums: { algorithm: string; checksumValue: string }[];
  externalRefs: { referenceCategory: string; referenceType: string; referenceLocator: string }[];
  licenseDeclared?: string;
  primaryPackagePurpose?: string;
}
export interface SbomDocument {
  spdxVersion: 'SPDX-2.3';
  dataLicense: string;
  SPDXID: string;
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: SbomPackage[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}
export function packageKeyOf(input: string): string | undefined;
export function imageSbom(o: {
  arch: 'amd64' | 'arm64';
  imageName: string;
  imageDigest: string;
  version: string;
  created: string;
  lock: Lock;
  bundleInputs: string[];
  packageLock: {
    packages?: Record<string, { version?: string; resolved?: string; integrity?: string; license?: string }>;
  };
}): SbomDocument;
