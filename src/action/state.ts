// What main hands to post through the runner's step state (GITHUB_STATE -> STATE_* env).
// Never the token: state files live on the runner's disk and are readable by later steps. Post
// reads the token from the kubeconfig file instead, which it shreds afterwards.

export const STATE = {
  /** Written first: tells post that main ran at all. */
  revoke: 'revoke',
  brokerUrl: 'broker-url',
  brokerCa: 'broker-ca',
  /** The private directory, saved the moment it exists so a half-failed main still gets cleaned. */
  dir: 'kubeconfig-dir',
  kubeconfigPath: 'kubeconfig-path',
  /** credentials: exec only: the plugin's cache, where the current token is. */
  credentialCache: 'credential-cache',
  grantId: 'grant-id',
  namespace: 'namespace',
  expiresAt: 'expires-at',
  /** `gateway` or `direct` (the exchange answer's mode): whether post has a fallback. */
  mode: 'grant-mode',
} as const;

export interface PostState {
  revoke: boolean;
  brokerUrl: string;
  brokerCa: string;
  dir: string;
  kubeconfigPath: string;
  credentialCache: string;
  grantId: string;
  namespace: string;
  expiresAt: string;
  /** Empty when main saved none (an older main, or no grant): treated as direct. */
  mode: string;
}

export function readPostState(getState: (name: string) => string): PostState | undefined {
  const s = {
    revoke: getState(STATE.revoke),
    brokerUrl: getState(STATE.brokerUrl),
    brokerCa: getState(STATE.brokerCa),
    dir: getState(STATE.dir),
    kubeconfigPath: getState(STATE.kubeconfigPath),
    credentialCache: getState(STATE.credentialCache),
    grantId: getState(STATE.grantId),
    namespace: getState(STATE.namespace),
    expiresAt: getState(STATE.expiresAt),
    mode: getState(STATE.mode),
  };
  if (Object.values(s).every((v) => v === '')) return undefined;
  return { ...s, revoke: s.revoke !== 'false' };
}
