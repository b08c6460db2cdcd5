// One more kube-apiserver of the test cluster (scripts/cluster.mjs startExtraApiServer): the same
// etcd, CA and keys, other flags. What a highly available cluster with one differently configured
// API server looks like to a client that reaches that one.
export interface ExtraApiServer {
  server: string;
  /** An admin kubeconfig for this API server. */
  kubeconfig: string;
  stop(): Promise<void>;
}

export async function startExtraApiServer(flags: string[]): Promise<ExtraApiServer> {
  // A plain-JS script without type declarations, so imported by URL and typed here.
  const cluster = (await import(new URL('../../scripts/cluster.mjs', import.meta.url).href)) as {
    startExtraApiServer(flags: string[]): Promise<ExtraApiServer>;
  };
  return cluster.startExtraApiServer(flags);
}
