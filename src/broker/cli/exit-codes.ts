// The broker CLI's exit codes (docs/configuration.md, "The broker CLI"), the same for every command.
export const EXIT = Object.freeze({
  /** Done: the policy is valid, the request is allowed, the RBAC matches, or help was asked for. */
  ok: 0,
  /** The answer is no: the policy is invalid, the request is refused, the RBAC drifted. */
  no: 1,
  /** The command line or an input file is wrong (unknown option, missing argument, unreadable claims). */
  usage: 2,
  /** No answer: the cluster could not be reached or read. */
  unavailable: 3,
});
