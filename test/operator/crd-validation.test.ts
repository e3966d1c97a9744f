import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ApiException, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { API, API_GROUP, API_VERSION } from '../../services/common/config/schema.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { createNamespace, installCrds } from '../helpers/operator.ts';

const NS = 'crd-validation';

describe('the generated CRDs on a real kube-apiserver', () => {
  let cp: ControlPlane;
  let api: CustomObjectsApi;
  before(async () => {
    cp = await startControlPlane();
    await installCrds(cp.kubeConfig);
    await createNamespace(cp.kubeConfig, NS);
    api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  });
  after(async () => {
    await cp?.stop();
  });

  /** Creates like `kubectl apply --validate=strict`: unknown fields are an error, not silently pruned. */
  const create = (kind: 'MailDomain' | 'RelayPolicy', name: string, spec: unknown) =>
    api.createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace: NS,
      plural: kind === 'MailDomain' ? 'maildomains' : 'relaypolicies',
      body: { apiVersion: API, kind, metadata: { name }, spec },
      fieldValidation: 'Strict',
    });

  const refused = async (promise: Promise<unknown>, pattern: RegExp) => {
    const err = await promise.then(
      () => assert.fail('the API server accepted an invalid resource'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ApiException, String(err));
    assert.ok([400, 422].includes(err.code), `status ${err.code}`);
    assert.match(String(err.body), pattern);
  };

  it('accepts a valid MailDomain and a valid RelayPolicy', async () => {
    await create('MailDomain', 'good', {
      domain: 'example.org',
      inbound: { enabled: true, deliverTo: { host: 'store.mail.svc', port: 24, protocol: 'lmtp' } },
      outbound: { dkim: { selector: 'mail' } },
    });
    await create('RelayPolicy', 'good', {
      clients: { networks: ['10.0.0.0/8', '2001:db8::/32'] },
      senders: { domains: ['example.org'] },
      delivery: { pool: 'bulk', retry: { schedule: ['5m', '1h'], maxLifetime: '5d' } },
    });
  });

  it('refuses an invalid domain name', async () => {
    await refused(create('MailDomain', 'bad-domain', { domain: 'not a domain!' }), /spec\.domain/);
    await refused(create('MailDomain', 'upper-domain', { domain: '-bad-.example' }), /spec\.domain/);
  });

  it('refuses a network that is not a CIDR (CEL isCIDR)', async () => {
    await refused(
      create('RelayPolicy', 'bad-cidr', { clients: { networks: ['10.0.0.0/33'] } }),
      /every network must be a CIDR/,
    );
    await refused(
      create('RelayPolicy', 'bad-cidr2', { clients: { networks: ['10.1.2.3'] } }),
      /every network must be a CIDR/,
    );
  });

  it('refuses a port out of range', async () => {
    await refused(
      create('MailDomain', 'bad-port', {
        domain: 'example.net',
        inbound: { enabled: true, deliverTo: { host: 'store', port: 70000 } },
      }),
      /port/,
    );
  });

  it('refuses a malformed duration', async () => {
    await refused(
      create('RelayPolicy', 'bad-duration', {
        clients: { networks: ['10.0.0.0/8'] },
        delivery: { retry: { schedule: ['5 minutes'] } },
      }),
      /schedule/,
    );
  });

  it('refuses an unknown field with strict field validation', async () => {
    await refused(create('MailDomain', 'unknown-field', { domain: 'example.com', colour: 'blue' }), /colour/);
  });

  it('refuses what only CEL can say: clients without networks or users, inbound without a target', async () => {
    await refused(create('RelayPolicy', 'no-clients', { clients: {} }), /networks or authSecretRef/);
    // A policy used only by the HTTP API needs no SMTP clients.
    await create('RelayPolicy', 'api-only', {
      clients: {},
      api: { keysSecretRef: { name: 'app-api-keys' } },
    });
    await refused(
      create('MailDomain', 'no-target', { domain: 'example.com', inbound: { enabled: true } }),
      /deliverTo is required/,
    );
  });

  it('refuses TLS settings delivery could not keep', async () => {
    const clients = { networks: ['10.0.0.0/8'] };
    await refused(
      create('RelayPolicy', 'dane-smarthost', {
        clients,
        delivery: { smarthost: { host: 'relay.test' }, tls: 'dane' },
      }),
      /mta-sts and dane apply to MX delivery/,
    );
    await refused(
      create('RelayPolicy', 'sts-smarthost', {
        clients,
        delivery: { smarthost: { host: 'relay.test', tls: 'mta-sts' } },
      }),
      /tls/,
    );
    await refused(
      create('RelayPolicy', 'tls-suffix', {
        clients,
        delivery: { destinations: [{ match: '.google.com', tls: 'verify' }] },
      }),
      /not to an MX host suffix/,
    );
    await refused(
      create('RelayPolicy', 'tls-dest-smarthost', {
        clients,
        delivery: { smarthost: { host: 'relay.test' }, destinations: [{ match: 'a.test', tls: 'verify' }] },
      }),
      /set smarthost.tls/,
    );
  });

  it('refuses destinations[] limits delivery could not apply (issue #8: truth in the schema)', async () => {
    const clients = { networks: ['10.0.0.0/8'] };
    await refused(
      create('RelayPolicy', 'dest-not-smarthost', {
        clients,
        delivery: {
          smarthost: { host: 'relay.test' },
          destinations: [{ match: 'gmail.com', maxConnections: 2 }],
        },
      }),
      /or the smarthost host \(host or host:port\)/,
    );
    await refused(
      create('RelayPolicy', 'dest-no-limit', { clients, delivery: { destinations: [{ match: 'a.test' }] } }),
      /needs tls or a limit/,
    );
    await refused(
      create('RelayPolicy', 'dest-port-without-smarthost', {
        clients,
        delivery: { destinations: [{ match: 'a.test:25', maxConnections: 1 }] },
      }),
      /host:port names a smarthost/,
    );
    await refused(
      create('RelayPolicy', 'dest-wildcard', {
        clients,
        delivery: { destinations: [{ match: '*.google.com', maxConnections: 1 }] },
      }),
      /match/,
    );
    const ok = await create('RelayPolicy', 'dest-ok', {
      clients,
      delivery: {
        smarthost: { host: 'relay.test', port: 587 },
        destinations: [{ match: 'relay.test:587', maxConnections: 2, connectionsPerMinute: 10 }],
      },
    });
    assert.ok(ok);
  });

  it('inbound.authentication and arcSeal: accepts the documented settings, refuses ones that would change nothing', async () => {
    const md = (name: string, authentication: unknown) =>
      create('MailDomain', name, {
        domain: `${name}.example.org`,
        inbound: { enabled: true, deliverTo: { host: 'store', port: 24 }, authentication },
      });
    await md('auth-full', {
      dmarc: 'enforce',
      quarantine: 'hold',
      spfFail: 'reject',
      trustedArcSealers: ['lists.example.net'],
    });
    await md('auth-off', { dmarc: 'off' });
    await refused(
      md('auth-q', { dmarc: 'tag', quarantine: 'hold' }),
      /quarantine applies only with dmarc: enforce/,
    );
    await refused(md('auth-q2', { quarantine: 'tag' }), /quarantine applies only with dmarc: enforce/);
    await refused(
      md('auth-arc', { dmarc: 'off', trustedArcSealers: ['l.example'] }),
      /trustedArcSealers excuses DMARC or SPF failures/,
    );
    await refused(md('auth-enum', { dmarc: 'strict' }), /dmarc/);
    await create('RelayPolicy', 'sealing', {
      clients: { networks: ['10.0.0.0/8'] },
      arcSeal: { domain: 'example.org', selector: 'arc2026', keySecretRef: { name: 'arc-key' } },
    });
    await refused(
      create('RelayPolicy', 'sealing-bad', {
        clients: { networks: ['10.0.0.0/8'] },
        arcSeal: { domain: 'example.org' },
      }),
      /selector|keySecretRef/,
    );
  });

  it('refuses an unknown enum value', async () => {
    await refused(
      create('RelayPolicy', 'bad-tls', { clients: { networks: ['10.0.0.0/8'] }, delivery: { tls: 'maybe' } }),
      /tls/,
    );
  });

  it('accepts the documented examples in examples/k8s as they are', async () => {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    for (const file of ['maildomain.yaml', 'relaypolicy.yaml']) {
      const docs = parseAllDocuments(
        readFileSync(new URL(`../../examples/k8s/${file}`, import.meta.url), 'utf8'),
      );
      for (const doc of docs.map((d) => d.toJSON())) {
        if (doc.kind === 'Secret') await core.createNamespacedSecret({ namespace: NS, body: doc });
        else await create(doc.kind, `example-${doc.metadata.name}`, doc.spec);
      }
    }
  });
});
