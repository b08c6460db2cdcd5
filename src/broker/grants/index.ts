// The grant domain's entry points for the routes: `grants.create`, `grants.renew`, `grants.revoke`.
export { create } from './creation.js';
export { grantMode, rulesOf } from './grant-kinds.js';
export { renew, type RenewRequest, type RenewedGrant } from './renewal.js';
export { revoke, type RevokeProof, type RevokedGrant } from './revocation.js';
export type { GrantDeps } from './grant-deps.js';
