// RBAC rule semantics in memory (src/broker/rbac/evaluate.ts). The cluster test
// (evaluate-agreement.cluster.test.ts) compares it with the API server on thousands of generated
// pairs; these are the cases worth naming, each a place where a plausible reading of RBAC is wrong.
import { describe, expect, test } from '@jest/globals';
import {
  allowingRuleIndex,
  rbacAllows,
  ruleAllows,
  type RbacRequest,
  type RbacRule,
} from '../../../src/broker/rbac/evaluate.js';

const pods: RbacRule = { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] };
const get = (extra: Partial<RbacRequest> = {}): RbacRequest => ({
  verb: 'get',
  apiGroup: '',
  resource: 'pods',
  namespace: 'ns',
  name: 'web',
  ...extra,
});

describe('ruleAllows', () => {
  test('exact verb, group and resource', () => {
    expect(ruleAllows(pods, get())).toBe(true);
    expect(ruleAllows(pods, get({ verb: 'delete' }))).toBe(false);
    expect(ruleAllows(pods, get({ apiGroup: 'apps' }))).toBe(false);
    expect(ruleAllows(pods, get({ resource: 'services' }))).toBe(false);
  });
  test('names are case-sensitive, as in the API server', () => {
    expect(ruleAllows(pods, get({ resource: 'Pods' }))).toBe(false);
    expect(ruleAllows(pods, get({ verb: 'GET' }))).toBe(false);
    expect(ruleAllows({ ...pods, apiGroups: ['Apps'] }, get({ apiGroup: 'apps' }))).toBe(false);
  });
  test('* in verbs, apiGroups and resources matches anything', () => {
    const all: RbacRule = { apiGroups: ['*'], resources: ['*'], verbs: ['*'] };
    expect(
      ruleAllows(all, get({ verb: 'deletecollection', apiGroup: 'x.io', resource: 'w', subresource: 's' })),
    ).toBe(true);
  });
  test('a subresource needs resource/subresource; the resource alone does not cover it', () => {
    expect(ruleAllows(pods, get({ subresource: 'log' }))).toBe(false);
    expect(ruleAllows({ ...pods, resources: ['pods/log'] }, get({ subresource: 'log' }))).toBe(true);
    expect(ruleAllows({ ...pods, resources: ['pods/log'] }, get())).toBe(false);
  });
  test('*/sub matches that subresource of any resource; pods/* is a literal matching nothing', () => {
    const anyStatus: RbacRule = { apiGroups: [''], resources: ['*/status'], verbs: ['get'] };
    expect(ruleAllows(anyStatus, get({ resource: 'services', subresource: 'status' }))).toBe(true);
    expect(ruleAllows(anyStatus, get({ subresource: 'log' }))).toBe(false);
    expect(ruleAllows(anyStatus, get())).toBe(false);
    const podsAny: RbacRule = { apiGroups: [''], resources: ['pods/*'], verbs: ['get'] };
    expect(ruleAllows(podsAny, get({ subresource: 'status' }))).toBe(false);
    expect(ruleAllows(podsAny, get())).toBe(false);
  });
  test('resourceNames: only requests naming one of them; a list or create (no name) never matches', () => {
    const named: RbacRule = { ...pods, resourceNames: ['web'] };
    expect(ruleAllows(named, get())).toBe(true);
    expect(ruleAllows(named, get({ name: 'db' }))).toBe(false);
    expect(ruleAllows(named, get({ verb: 'list', name: undefined }))).toBe(false);
    expect(ruleAllows({ ...pods, resourceNames: [] }, get({ name: 'db' }))).toBe(true);
    expect(ruleAllows({ ...pods, resourceNames: ['*'] }, get())).toBe(false);
  });
  test('non-resource URLs: exact, * or a trailing-* prefix; never through resource rules', () => {
    const urls: RbacRule = { verbs: ['get'], nonResourceURLs: ['/metrics', '/logs/*'] };
    expect(ruleAllows(urls, { verb: 'get', path: '/metrics' })).toBe(true);
    expect(ruleAllows(urls, { verb: 'get', path: '/metrics/x' })).toBe(false);
    expect(ruleAllows(urls, { verb: 'get', path: '/logs/' })).toBe(true);
    expect(ruleAllows(urls, { verb: 'get', path: '/logs' })).toBe(false);
    expect(ruleAllows(urls, { verb: 'post', path: '/metrics' })).toBe(false);
    expect(ruleAllows({ ...pods, verbs: ['get'] }, { verb: 'get', path: '/api' })).toBe(false);
    expect(ruleAllows(urls, get())).toBe(false);
  });
});

describe('binding scope', () => {
  test('a Role applies in its namespace only: not another, not cluster-scoped, not to URLs', () => {
    const scope = { namespace: 'ns', rules: [pods] };
    expect(rbacAllows([scope], get())).toBe(true);
    expect(rbacAllows([scope], get({ namespace: 'other' }))).toBe(false);
    expect(rbacAllows([scope], get({ namespace: undefined }))).toBe(false);
    const url = { namespace: 'ns', rules: [{ verbs: ['get'], nonResourceURLs: ['*'] }] };
    expect(rbacAllows([url], { verb: 'get', path: '/healthz' })).toBe(false);
  });
  test('cluster-wide rules apply in every namespace and to cluster-scoped requests', () => {
    const scope = { rules: [pods] };
    expect(rbacAllows([scope], get({ namespace: 'other' }))).toBe(true);
    expect(rbacAllows([scope], get({ namespace: '' }))).toBe(true);
  });
  test('allowingRuleIndex names the first rule that allows', () => {
    const scope = { namespace: 'ns', rules: [{ ...pods, verbs: ['list'] }, pods, { ...pods, verbs: ['*'] }] };
    expect(allowingRuleIndex(scope, get())).toBe(1);
    expect(allowingRuleIndex(scope, get({ verb: 'patch' }))).toBe(2);
    expect(allowingRuleIndex(scope, get({ resource: 'x' }))).toBe(-1);
  });
});
