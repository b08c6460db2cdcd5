// Types of go-tool.mjs, for the test support that runs its tools.
export const repoRoot: string;
export const GO_TOOLS: Record<string, string>;
export function goToolPath(name: string): string;
export function ensureGoTool(name: string, stdio?: 'inherit' | 'pipe'): string;
