// Entry point of the kubeconfig's exec credential plugin (dist/credential/index.js): wiring only,
// all logic is in credential-run.ts.
import { defaultCredentialDeps, run } from './credential-run.js';

process.exitCode = await run(defaultCredentialDeps());
