// Startup-time errors for the broker's YAML files (config and policy). Every problem names the
// file, the line and the field, and says how to fix it, so an operator can correct a rejected file
// without reading the source. All problems of a file are reported at once.

export interface ConfigIssue {
  file: string;
  /** 1-based line of the offending key or value; undefined when the file has no usable position. */
  line: number | undefined;
  /** Dotted field path, e.g. `rules[0].match.ref`; empty for the whole document. */
  field: string;
  /** What is wrong and how to fix it. */
  message: string;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`;
  return issue.field ? `${where}: ${issue.field}: ${issue.message}` : `${where}: ${issue.message}`;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const first = issues[0];
    const head = first ? first.file : 'configuration';
    super(
      issues.length === 1 && first
        ? formatIssue(first)
        : `${head}: ${issues.length} problems:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.issues = Object.freeze([...issues]);
  }
}
