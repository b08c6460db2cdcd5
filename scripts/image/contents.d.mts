// Types of contents.mjs, for the TypeScript tests that read its constants.
export const imageDir: string;
export const LOCK_FILE: string;
export interface NodePin {
  package: string;
  version: string;
  integrity: string;
  tarball: string;
}
export interface DebPin {
  package: string;
  version: string;
  architecture: string;
  filename: string;
  size: number;
  sha256: string;
}
export interface Lock {
  node: { version: string; amd64: NodePin; arm64: NodePin };
  debian: { amd64: DebPin[]; arm64: DebPin[] };
}
export function readLock(): Lock;
export const DEBIAN: { keyring: string; sources: string[] };
export type Arch = 'amd64' | 'arm64';
export const ARCHES: Record<
  Arch,
  { npmPackage: string; triplet: string; loader: string; elfMachine: number; variant: string | undefined }
>;
export const PACKAGES: { name: string; include?: string[]; exclude?: (triplet: string) => string[] }[];
export const DOC_EXCEPTIONS: string[];
export const DISTROLESS_BASE: { image: string; env: string[] };
export const IMAGE: {
  user: string;
  node: string;
  bundle: string;
  nodeLicense: string;
  caBundle: string;
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  env: string[];
  exposedPorts: string[];
  rootfsFiles: string[];
  statusDir: string;
};
