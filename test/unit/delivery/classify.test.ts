/** Reply and error classification: the table decides delivered / deferred / failed and keeps the remote text. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyError, classifyReply, enhancedOf } from '../../../services/delivery/classify.ts';

describe('classifyReply', () => {
  it('2xx is delivered', () => {
    assert.equal(classifyReply('250 2.0.0 OK queued as 123').status, 'delivered');
  });
  it('4xx is deferred and keeps the text and enhanced code', () => {
    const c = classifyReply('451 4.7.1 Greylisted, try again');
    assert.equal(c.status, 'deferred');
    assert.equal(c.enhanced, '4.7.1');
    assert.equal(c.response, '451 4.7.1 Greylisted, try again');
  });
  it('5xx is failed with the remote text and enhanced code', () => {
    const c = classifyReply('550 5.1.1 No such user');
    assert.deepEqual([c.status, c.enhanced, c.category], ['failed', '5.1.1', 'recipient']);
  });
  it('a 5xx that says "try again later" is deferred', () => {
    assert.equal(classifyReply('554 Temporarily unavailable, try again later').status, 'deferred');
  });
  it('derives a class enhanced code when the reply has none', () => {
    assert.equal(classifyReply('550 go away').enhanced, '5.0.0');
    assert.equal(enhancedOf('550 go away'), undefined);
  });
});

describe('classifyError', () => {
  it('null MX is a permanent failure 5.1.10', () => {
    const c = classifyError({ code: 'ENULLMX', category: 'dns', message: 'publishes a null MX' });
    assert.deepEqual([c.status, c.enhanced], ['failed', '5.1.10']);
  });
  it('NXDOMAIN is a permanent failure', () => {
    assert.equal(classifyError({ code: 'ENOTFOUND', category: 'dns', message: 'x' }).status, 'failed');
  });
  it('SERVFAIL and DNS timeouts defer', () => {
    assert.equal(classifyError({ code: 'ESERVFAIL', category: 'dns', message: 'x' }).status, 'deferred');
    assert.equal(classifyError({ code: 'ETIMEOUT', category: 'dns', message: 'x' }).status, 'deferred');
  });
  it('connection refused, reset and timeouts defer', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ECONNECTION', 'ESOCKET']) {
      assert.equal(classifyError({ code, category: 'network', message: code }).status, 'deferred', code);
    }
  });
  it('an error carrying a remote reply is classified by the reply', () => {
    const c = classifyError({ code: 'EENVELOPE', responseCode: 550, response: '550 5.7.1 Relaying denied' });
    assert.deepEqual([c.status, c.enhanced], ['failed', '5.7.1']);
    assert.equal(
      classifyError({ code: 'ECONNECTION', responseCode: 421, response: '421 4.3.2 bye' }).status,
      'deferred',
    );
  });
  it('a smarthost refusing our AUTH defers and keeps the reply', () => {
    const c = classifyError({
      code: 'EAUTH',
      responseCode: 535,
      response: '535 5.7.8 Authentication failed',
    });
    assert.deepEqual([c.status, c.enhanced], ['deferred', '5.7.8']);
  });
  it('a deleted body fails; unknown local errors defer', () => {
    assert.equal(
      classifyError({ code: 'EBODYGONE', message: 'message body missing (deleted)' }).status,
      'failed',
    );
    assert.equal(classifyError({ message: 'TypeError: boom' }).status, 'deferred');
  });
});
