// Types of ocibuild.mjs, for the TypeScript tests that run ocibuild on plans of their own.
export function imageCache(): string;
export function ensureOcibuild(cache: string): string;
export function runOcibuild(
  binary: string,
  planFile: string,
): { digest: string; compressedBytes: number; uncompressedBytes: number; layers: number; out: string };
