// Types of node-package.mjs, for its tests.
export function registryPin(
  npmPackage: string,
  version: string,
): Promise<{ package: string; version: string; integrity: string; tarball: string }>;
export function nodeTarball(
  cache: string,
  pin: { package: string; version: string; integrity: string },
): Promise<string>;
