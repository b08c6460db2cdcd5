// Setup of jest's unit project: the cluster's coordinates are removed from each unit test file's
// environment. In a full run the cluster project's global setup has put them in every worker's
// environment; without this, a unit test that reaches the control plane would pass there and fail
// only in `npm run test:unit`.
for (const name of ['K8S_EA_ADMIN_KUBECONFIG', 'K8S_EA_AUDIT_LOG', 'K8S_EA_SERVER']) delete process.env[name];
