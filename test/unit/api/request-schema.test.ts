import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { compose, crlf } from '../../../services/api/compose.ts';
import { OPENAPI_PATH, openApiYaml } from '../../../services/api/openapi.ts';
import { validateRequest } from '../../../services/api/request-schema.ts';

const ok = { from: 'me@app.example', to: ['you@far.example'], subject: 'Hi', text: 'Hello' };

describe('POST /v1/messages request body', () => {
  it('docs/openapi.yaml is what services/api/openapi.ts generates (run npm run openapi)', () => {
    assert.equal(readFileSync(OPENAPI_PATH, 'utf8'), openApiYaml());
  });

  it('accepts a raw message with its envelope and structured fields', () => {
    assert.ok(
      validateRequest({ envelope: { from: 'a@b.example', to: ['c@d.example'] }, raw: 'Subject: x\n\nhi' }).ok,
    );
    assert.ok(validateRequest(ok).ok);
    assert.ok(
      validateRequest({
        ...ok,
        from: { name: 'Me', address: 'me@app.example' },
        cc: ['c@far.example'],
        bcc: [{ name: 'B', address: 'b@far.example' }],
        html: '<p>Hello</p>',
        attachments: [{ filename: 'a.txt', contentType: 'text/plain', content: 'aGk=' }],
        headers: { 'X-Campaign': 'spring', 'List-Unsubscribe': '<mailto:u@app.example>' },
      }).ok,
    );
  });

  it('refuses bad bodies with a message naming the field', () => {
    const cases: [unknown, string][] = [
      [[], 'body'],
      [{ raw: 'Subject: x\n\nhi' }, 'envelope'],
      [{ envelope: { from: 'a@b.example', to: [] }, raw: 'x: y' }, 'envelope.to'],
      [{ ...ok, raw: 'x: y' }, 'from'],
      [{ ...ok, to: [] }, 'to'],
      [{ ...ok, to: ['Name <you@far.example>'] }, 'to[0]'],
      [{ ...ok, subject: 'a\r\nBcc: evil@x.example' }, 'subject'],
      [{ ...ok, headers: { 'Content-Type': 'text/html' } }, 'headers'],
      [{ ...ok, headers: { 'X-Ok': 'a\nb' } }, 'headers'],
      [
        { ...ok, attachments: [{ filename: 'a', contentType: 'text/plain', content: 'not base64!' }] },
        'attachments[0].content',
      ],
      [
        { ...ok, attachments: [{ filename: '../etc/passwd', contentType: 'text/plain', content: '' }] },
        'attachments[0].filename',
      ],
      [{ ...ok, path: '/etc/passwd' }, 'path'],
    ];
    for (const [body, field] of cases) {
      const v = validateRequest(body);
      assert.equal(v.ok, false, JSON.stringify(body));
      if (!v.ok) {
        assert.ok(v.field.startsWith(field), `${JSON.stringify(body)}: field ${v.field}, expected ${field}`);
        assert.ok(v.message.startsWith(v.field), v.message);
      }
    }
  });

  it('makes raw line ends CRLF and ends the message with CRLF', () => {
    assert.equal(crlf('a: b\n\nx\ry'), 'a: b\r\n\r\nx\r\ny\r\n');
    assert.equal(crlf('a: b\r\n\r\nx\r\n'), 'a: b\r\n\r\nx\r\n');
  });

  it('composes structured fields into MIME with Bcc only in the envelope', async () => {
    const c = await compose(
      {
        from: { name: 'Zoë', address: 'me@app.example' },
        to: ['you@far.example'],
        bcc: ['hidden@far.example'],
        subject: 'héllo',
        text: 'plain',
        html: '<b>rich</b>',
        attachments: [
          { filename: 'r.txt', contentType: 'text/plain', content: Buffer.from('report').toString('base64') },
        ],
        headers: { 'X-Campaign': 'spring' },
      },
      '<ID1@mail.example>',
    );
    assert.equal(c.from, 'me@app.example');
    assert.deepEqual(c.to, ['you@far.example', 'hidden@far.example']);
    const text = c.message.toString('utf8');
    assert.match(text, /^From: =\?UTF-8\?Q\?Zo=C3=AB\?= <me@app\.example>\r$/m);
    assert.match(text, /^Subject: =\?UTF-8\?Q\?h=C3=A9llo\?=\r$/m);
    assert.match(text, /^Message-ID: <ID1@mail\.example>\r$/m);
    assert.match(text, /^X-Campaign: spring\r$/m);
    assert.match(text, /^Content-Type: multipart\/mixed/m);
    assert.match(text, /^Content-Type: multipart\/alternative/m);
    assert.match(text, /filename=r\.txt/);
    assert.match(text, new RegExp(Buffer.from('report').toString('base64')));
    assert.doesNotMatch(text, /hidden@far\.example/);
  });
});
