// How an error of the Kubernetes calls reads in a log line: an API answer by its status and message,
// anything else by its own message. A pod that could not reach an OIDC issuer once logged its fetch
// timeout (a DOMException with code 23) as "HTTP 23".
import { expect, test } from '@jest/globals';
import { describeK8sError, isNotFound, statusCodeOf } from '../../../src/broker/kube/errors.js';

test('an API answer reads as its status and the message of its Status body', () => {
  const err = Object.assign(new Error('HTTP-Code: 404'), {
    code: 404,
    body: JSON.stringify({ kind: 'Status', message: 'serviceaccounts "gha-1" not found' }),
  });
  expect(describeK8sError(err)).toBe('HTTP 404: serviceaccounts "gha-1" not found');
  expect(isNotFound(err)).toBe(true);
});

test('a timeout is no HTTP status: it reads as its name and message', () => {
  const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
  expect(timeout.code).toBe(23);
  expect(statusCodeOf(timeout)).toBeUndefined();
  expect(describeK8sError(timeout)).toBe('TimeoutError: The operation was aborted due to timeout');
});

test('numeric codes outside 100–599 and string codes are not statuses', () => {
  for (const code of [0, 23, 99, 600, 'ECONNREFUSED'])
    expect(statusCodeOf(Object.assign(new Error('x'), { code }))).toBeUndefined();
});
