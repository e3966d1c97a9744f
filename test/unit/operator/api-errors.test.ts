import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { describeError } from '../../../operator/runtime/api-errors.ts';

describe('Kubernetes API errors in logs', () => {
  it('turns client-node\'s "Unknown API Status Code!" with escaped JSON into code, reason and message', () => {
    // What client-node 2.0.1 throws for a 403: the Status object as a JSON string body.
    const body = JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      message:
        'secrets is forbidden: User "system:serviceaccount:postern:postern-operator" cannot list resource "secrets" in API group "" at the cluster scope',
      reason: 'Forbidden',
      code: 403,
    });
    const err = new ApiException(403, 'Unknown API Status Code!', body, {});
    assert.match(err.message, /Unknown API Status Code/);
    assert.equal(
      describeError(err),
      '403 Forbidden: secrets is forbidden: User "system:serviceaccount:postern:postern-operator" cannot list resource "secrets" in API group "" at the cluster scope',
    );
  });

  it('keeps other errors as they are', () => {
    assert.equal(
      describeError(new Error('connect ECONNREFUSED 127.0.0.1:6443')),
      'connect ECONNREFUSED 127.0.0.1:6443',
    );
    assert.equal(describeError(new ApiException(500, 'x', 'plain text', {})), '500: plain text');
  });
});
