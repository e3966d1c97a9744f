/**
 * The user journey on a real single-node Kubernetes (scripts/cluster/up.sh): images built from the Dockerfile and
 * imported, `helm install` of charts/postern with values a user would write (3 NATS servers with R3 streams,
 * 2 ingress, 2 queue, one delivery pool, the operator; NATS locked down, the default), MailDomain and
 * RelayPolicy applied with kubectl, mail in through the ingress Service and out to peers on the node link, the
 * autoscaler starting real pods, pods killed and deleted mid-run, a rolling `helm upgrade`, a delivery pod drained
 * mid-transaction, Prometheus scraping the pods, and `helm uninstall` leaving a namespace that can be deleted. Steps run in order against one cluster.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { type Cluster, startCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/postern.ts';
import { findPrometheus } from '../helpers/prometheus.ts';
import { type LoadResult, sendLoad, testIdOf } from '../helpers/smtp-client.ts';
import { freePort, type SinkOptions, type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

const NS = 'postern';
const RELEASE = 'postern';
const CHART = new URL('../../charts/postern', import.meta.url).pathname;
const APP_VERSION =
  /^appVersion:\s*"?([^"\s]+)"?/m.exec(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'))?.[1] ?? '';
const UPGRADE_TAG = `${APP_VERSION}-upgrade`;
const INBOUND_DOMAIN = 'inbound.postern.test';
const SENDER = 'app@sender.postern.test';
/** Messages per bounded load run (faults, upgrade). */
const RUN = Number(process.env['POSTERN_CLUSTER_MESSAGES'] ?? 1000);

describe('Postern on a real Kubernetes node', () => {
  let cluster: Cluster;
  let relaySink: SmtpSink;
  const relaySinkOpts: SinkOptions = {};
  let mailbox: SmtpSink;
  let smtpNodePort = 0;
  let prometheus: ChildProcess | undefined;
  /** The steps build on each other: after a failed step the later ones fail at once instead of waiting out. */
  let broken = '';
  const step = (name: string, fn: () => Promise<void>) =>
    it(name, async () => {
      assert.equal(broken, '', `an earlier step failed: ${broken}`);
      try {
        await fn();
      } catch (err) {
        broken = name;
        throw err;
      }
    });

  const k = (args: string[], input?: string) => cluster.k(['-n', NS, ...args], { input });
  const json = async <T>(args: string[]) => JSON.parse(await k([...args, '-o', 'json'])) as T;
  interface Pod {
    metadata: { name: string; uid: string; labels: Record<string, string>; deletionTimestamp?: string };
    status: {
      phase: string;
      podIP?: string;
      conditions?: { type: string; status: string }[];
      containerStatuses?: {
        name: string;
        ready: boolean;
        restartCount: number;
        containerID?: string;
        image: string;
      }[];
    };
  }
  const pods = async (component?: string) =>
    (
      await json<{ items: Pod[] }>([
        'get',
        'pods',
        ...(component ? ['-l', `app.kubernetes.io/component=${component}`] : []),
      ])
    ).items;
  const ready = (p: Pod) =>
    !p.metadata.deletionTimestamp &&
    p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  const deliveryDeployment = `${RELEASE}-delivery-default`;
  const replicasOf = async (deployment: string) =>
    await json<{ spec: { replicas: number }; status: { readyReplicas?: number } }>([
      'get',
      'deployment',
      deployment,
    ]);

  /** Arrivals at a sink by X-Test-Id. */
  const arrivals = (sink: SmtpSink) => {
    const ids = new Map<string, number>();
    for (const m of sink.messages) {
      const id = testIdOf(m.raw);
      if (id) ids.set(id, (ids.get(id) ?? 0) + 1);
    }
    return ids;
  };
  /** Waits until every accepted message of a run has arrived; returns the duplicates count. */
  const everyAcceptedArrives = async (what: string, result: LoadResult) => {
    const ids = await eventually(
      `${what}: every 250-acknowledged message at the smarthost`,
      () => {
        const ids = arrivals(relaySink);
        return [...result.accepted].every((id) => ids.has(id)) && ids;
      },
      600_000,
    );
    const duplicates = [...result.accepted].filter((id) => (ids.get(id) ?? 0) > 1).length;
    console.log(
      `${what}: accepted ${result.accepted.size}, not accepted ${result.notAccepted.size}, client retries (4xx or connection failures) ${result.tempFailures}, all arrived, duplicates ${duplicates}`,
    );
    return duplicates;
  };
  let runNo = 0;
  const load = (count: number, onAccepted?: (n: number) => void) => {
    const run = ++runNo;
    return sendLoad({
      host: cluster.nodeIp,
      port: smtpNodePort,
      count,
      sessions: 4,
      tries: 60,
      from: SENDER,
      to: (i) => `r${run}-${i}@far.postern.test`,
      idPrefix: `load${run}`,
      ...(onAccepted ? { onAccepted } : {}),
    });
  };

  /** kill -9 of a pod's main container process, from the node (as the kernel's OOM killer would). */
  const kill9 = async (pod: Pod) => {
    const id = pod.status.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, '');
    assert.ok(id, `container id of ${pod.metadata.name}`);
    const ctr = await cluster.ctr(['-n', 'k8s.io', 'task', 'kill', '-s', 'SIGKILL', id]);
    assert.equal(ctr.code, 0, ctr.stderr);
  };

  /** swaks through the ingress NodePort, as a client outside the cluster. */
  const smtp = (from: string, to: string, ...extra: string[]) =>
    swaks(['--server', `${cluster.nodeIp}:${smtpNodePort}`, '--from', from, '--to', to, ...extra]);

  before(async () => {
    cluster = await startCluster({ imageTags: [APP_VERSION, UPGRADE_TAG] });
    relaySinkOpts.host = cluster.hostIp;
    relaySinkOpts.port = await freePort();
    relaySinkOpts.onRcpt = (rcpt) => {
      if (rcpt.startsWith('gone@')) return { code: 550, message: '5.1.1 no such user' };
      if (rcpt.startsWith('later@')) return { code: 451, message: '4.2.0 try again later' };
      return 'accept';
    };
    relaySink = await startSmtpSink(relaySinkOpts);
    mailbox = await startSmtpSink({ host: cluster.hostIp, lmtp: true });
  });
  after(async () => {
    prometheus?.kill('SIGTERM');
    await relaySink?.close();
    await mailbox?.close();
    await cluster?.stop();
  });

  step('installs with helm and every pod becomes Ready without restarts', async () => {
    await cluster.k(['create', 'namespace', NS]);
    // No storage provisioner on this node: three static hostPath volumes of a class the values name.
    for (let i = 0; i < 3; i++) {
      await cluster.k(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'PersistentVolume',
          metadata: { name: `nats-data-${i}` },
          spec: {
            capacity: { storage: '2Gi' },
            accessModes: ['ReadWriteOnce'],
            storageClassName: 'local-static',
            persistentVolumeReclaimPolicy: 'Delete',
            hostPath: { path: join(cluster.dir, 'volumes', `nats-${i}`), type: 'DirectoryOrCreate' },
          },
        }),
      });
    }
    const values = join(cluster.dir, 'values.yaml');
    cluster.writeFile(values, userValues());
    const install = await cluster.helm(
      ['install', RELEASE, CHART, '-n', NS, '-f', values, '--wait', '--timeout', '10m'],
      660_000,
    );
    assert.equal(install.code, 0, `${install.stderr}\n${await diagnostics()}`);
    const all = await pods();
    const names = all.map((p) => p.metadata.name).join(', ');
    assert.equal(
      all.filter((p) => p.metadata.labels['app.kubernetes.io/component'] === 'nats').length,
      3,
      names,
    );
    assert.ok(all.every(ready), `every pod Ready: ${names}`);
    const restarts = all.flatMap((p) =>
      (p.status.containerStatuses ?? []).map((c) => [p.metadata.name, c.restartCount] as const),
    );
    console.log(
      `install: ${all.length} pods Ready; restarts ${JSON.stringify(Object.fromEntries(restarts))}`,
    );
    assert.ok(
      restarts.every(([, n]) => n === 0),
      `no pod restarted on a fresh install (services wait for NATS): ${JSON.stringify(restarts)}`,
    );
    const svc = await json<{ spec: { ports: { name: string; nodePort?: number }[] } }>([
      'get',
      'service',
      `${RELEASE}-ingress`,
    ]);
    smtpNodePort = svc.spec.ports.find((p) => p.name === 'smtp')?.nodePort ?? 0;
    assert.ok(smtpNodePort > 0, 'the ingress Service has a NodePort for smtp');
  });

  step('reconciles a MailDomain and a RelayPolicy applied with kubectl to Ready', async () => {
    await k(['apply', '-f', '-'], resources());
    for (const kind of ['maildomain/inbound', 'maildomain/sender', 'relaypolicy/apps', 'relaypolicy/bulk']) {
      const r = await cluster.kubectl(['-n', NS, 'wait', kind, '--for=condition=Ready', '--timeout=120s'], {
        timeoutMs: 150_000,
      });
      assert.equal(r.code, 0, `${kind} Ready: ${r.stderr}\n${await diagnostics()}`);
    }
    const table = await k(['get', 'maildomains,relaypolicies']);
    console.log(table);
    assert.match(table, new RegExp(`${INBOUND_DOMAIN.replaceAll('.', '\\.')}\\s+True`));
    const md = await json<{ status: { dkimDNSRecord?: string } }>(['get', 'maildomain', 'sender']);
    assert.match(md.status.dkimDNSRecord ?? '', /v=DKIM1/);
  });

  step(
    'relays mail through the ingress Service to the smarthost and delivers inbound mail over LMTP',
    async () => {
      const relayed = await eventually(
        'relay through the NodePort (the policy allows this machine by address: the client address survives)',
        async () => {
          const r = await smtp(SENDER, 'someone@far.postern.test', '--header', 'X-Test-Id: relay-1');
          return r.code === 0 && r;
        },
        120_000,
      );
      assert.match(relayed.replies.at(-2) ?? '', /^250/);
      const inbound = await smtp(
        'someone@elsewhere.postern.test',
        `alice@${INBOUND_DOMAIN}`,
        '--header',
        'X-Test-Id: inbound-1',
      );
      assert.equal(inbound.code, 0, inbound.transcript);
      const unknown = await smtp(
        'someone@elsewhere.postern.test',
        `nobody@${INBOUND_DOMAIN}`,
        '--quit-after',
        'RCPT',
      );
      assert.ok(
        unknown.replies.some((l) => /^550 5\.1\.1/.test(l)),
        unknown.transcript,
      );
      const [out] = await eventually('the relayed message at the smarthost', () => {
        const m = relaySink.messages.filter((x) => testIdOf(x.raw) === 'relay-1');
        return m.length > 0 && m;
      });
      assert.match(
        out?.raw.toString() ?? '',
        /^DKIM-Signature:.*\bd=sender\.postern\.test\b/ms,
        'signed with the key the operator generated',
      );
      await eventually('the inbound message in the mailbox store', () =>
        mailbox.messages.some(
          (x) => testIdOf(x.raw) === 'inbound-1' && x.to.includes(`alice@${INBOUND_DOMAIN}`),
        ),
      );
    },
  );

  step(
    "keeps NATS locked down by default: TLS with the chart's CA, one user per component, no clear-text key in KV",
    async () => {
      // From this machine to the NATS client Service, like a pod would, with what the chart generated.
      const svc = await json<{ spec: { clusterIP: string } }>(['get', 'service', `${RELEASE}-nats`]);
      const secret = async (name: string) =>
        (await json<{ data: Record<string, string> }>(['get', 'secret', name])).data;
      const b64 = (v: string | undefined) => Buffer.from(v ?? '', 'base64').toString();
      const auth = await secret(`${RELEASE}-nats-auth`);
      const tls = {
        ca: b64((await secret(`${RELEASE}-nats-tls`))['ca.crt']),
        // The certificate names the Service's DNS name; this machine reaches it by its ClusterIP.
        servername: `${RELEASE}-nats.${NS}.svc`,
      };
      const servers = `${svc.spec.clusterIP}:4222`;
      await assert.rejects(connect({ servers, tls, reconnect: false }), /Authorization/i);
      await assert.rejects(
        connect({ servers, tls: null, user: 'queue', pass: b64(auth['queue']), reconnect: false }),
      );
      // Each user gets replies only on its own inbox prefix (NATS_INBOX_PREFIX in the pods).
      const queue = await connect({
        servers,
        tls,
        user: 'queue',
        pass: b64(auth['queue']),
        inboxPrefix: '_INBOX_queue',
        reconnect: false,
      });
      const ingress = await connect({
        servers,
        tls,
        user: 'ingress',
        pass: b64(auth['ingress']),
        inboxPrefix: '_INBOX_ingress',
        reconnect: false,
      });
      try {
        const config = await new Kvm(queue).open('config');
        const doc = (await config.get('domain.sender.postern.test'))?.json<{
          dkim?: { privateKey: string };
        }>();
        assert.match(
          doc?.dkim?.privateKey ?? '',
          /^sealed:v1:/,
          'the DKIM key the operator generated is sealed',
        );
        for await (const key of await config.keys()) {
          assert.doesNotMatch((await config.get(key))?.string() ?? '', /PRIVATE KEY/, key);
        }
        await assert.rejects(
          (await new Kvm(ingress).open('config')).put('domain.evil.test', '{}'),
          /permission/i,
          'ingress cannot write the config',
        );
      } finally {
        await queue.close();
        await ingress.close();
      }
    },
  );

  step(
    'scales the delivery pool on a backlog: new pods start and consume, and replicas fall when it drains',
    async () => {
      const before = (await replicasOf(deliveryDeployment)).spec.replicas;
      relaySinkOpts.delayMs = 250; // a slow smarthost: the backlog grows faster than one pod drains it
      const burst = load(RUN);
      const scaled = await eventually(
        'the operator scales the delivery Deployment up and the new pods become Ready',
        async () => {
          const d = await replicasOf(deliveryDeployment);
          return d.spec.replicas > before && (d.status.readyReplicas ?? 0) > before && d;
        },
        300_000,
      );
      console.log(
        `autoscale: ${before} → ${scaled.spec.replicas} replicas (${scaled.status.readyReplicas} Ready)`,
      );
      const newPods = (await pods('delivery-default')).filter(ready);
      assert.ok(newPods.length > before, `${newPods.length} delivery pods Ready`);
      relaySinkOpts.delayMs = 0;
      const result = await burst;
      await everyAcceptedArrives('autoscale burst', result);
      const senders = new Set(relaySink.messages.map((m) => m.remoteAddress));
      const podIps = new Set(newPods.map((p) => p.status.podIP));
      const consuming = [...podIps].filter((ip) => senders.has(ip ?? ''));
      assert.ok(
        consuming.length > 1,
        `more than one delivery pod delivered (pods ${[...podIps]}, seen ${[...senders]})`,
      );
      await eventually(
        'replicas fall back after the stabilisation window once the backlog drained',
        async () => (await replicasOf(deliveryDeployment)).spec.replicas === before,
        300_000,
      );
    },
  );

  step('starts a pool with minReplicas 0 when mail for it waits, and returns it to 0', async () => {
    const bulk = `${RELEASE}-delivery-bulk`;
    assert.equal((await replicasOf(bulk)).spec.replicas, 0, 'the bulk pool starts with no pod');
    const result = await sendLoad({
      host: cluster.nodeIp,
      port: smtpNodePort,
      count: 20,
      sessions: 2,
      from: 'news@bulk.postern.test',
      to: (i) => `bulk-${i}@far.postern.test`,
      idPrefix: 'bulk',
    });
    assert.equal(result.accepted.size, 20);
    await eventually(
      'the operator scales the bulk pool from 0 and its pod becomes Ready',
      async () => ((await replicasOf(bulk)).status.readyReplicas ?? 0) > 0,
      300_000,
    );
    await everyAcceptedArrives('bulk pool from zero', result);
    const bulkIps = new Set((await pods('delivery-bulk')).map((p) => p.status.podIP));
    assert.ok(
      relaySink.messages.some((m) => testIdOf(m.raw)?.startsWith('bulk-') && bulkIps.has(m.remoteAddress)),
      'a bulk pod delivered the bulk mail',
    );
    await eventually(
      'the bulk pool back at 0 replicas after the stabilisation window',
      async () => (await replicasOf(bulk)).spec.replicas === 0,
      300_000,
    );
  });

  step(
    'loses nothing when a NATS pod, a queue pod and a delivery pod are deleted or killed -9 mid-run',
    async () => {
      // Each fault picks its victim when it fires: a Ready pod, not one already terminating from an earlier step.
      const victim = (component: string) =>
        eventually(`a Ready ${component} pod`, async () => (await pods(component)).find(ready), 180_000);
      const del = async (component: string) =>
        k(['delete', 'pod', (await victim(component)).metadata.name, '--wait=false']);
      const faults = new Map<number, () => Promise<unknown>>([
        [Math.floor(RUN * 0.15), () => del('nats')],
        [Math.floor(RUN * 0.3), async () => kill9(await victim('queue'))],
        [Math.floor(RUN * 0.45), () => del('delivery-default')],
        [Math.floor(RUN * 0.6), () => del('queue')],
        [Math.floor(RUN * 0.75), async () => kill9(await victim('nats'))],
        [Math.floor(RUN * 0.85), async () => kill9(await victim('delivery-default'))],
      ]);
      const injected: Promise<unknown>[] = [];
      const faultErrors: unknown[] = [];
      const result = await load(RUN, (n) => {
        const fault = faults.get(n);
        if (fault) {
          faults.delete(n);
          injected.push(fault().catch((err: unknown) => faultErrors.push(err)));
        }
      });
      await Promise.all(injected);
      assert.deepEqual(faultErrors, [], 'every fault was injected without error');
      assert.equal(faults.size, 0, 'every fault was injected');
      assert.ok(result.accepted.size > 0);
      await everyAcceptedArrives('faults', result);
      await eventually('every pod Ready again', async () => (await pods()).every(ready), 300_000);
    },
  );

  step(
    'rolls every Deployment on a helm upgrade (new image tag and a changed value) without losing mail',
    async () => {
      const values = join(cluster.dir, 'values.yaml');
      const running = load(RUN);
      const upgrade = await cluster.helm(
        [
          'upgrade',
          RELEASE,
          CHART,
          '-n',
          NS,
          '-f',
          values,
          '--set',
          `image.tag=${UPGRADE_TAG}`,
          '--set',
          'logLevel=debug',
          '--wait',
          '--timeout',
          '10m',
        ],
        660_000,
      );
      assert.equal(upgrade.code, 0, `${upgrade.stderr}\n${await diagnostics()}`);
      const result = await running;
      await everyAcceptedArrives('helm upgrade', result);
      // Pods still terminating (a delivery pod draining its SMTP sessions, up to its grace period) serve no new
      // work: the serving ones must all run the new image.
      const images = (await pods())
        .filter(
          (p) => p.metadata.labels['app.kubernetes.io/component'] !== 'nats' && !p.metadata.deletionTimestamp,
        )
        .flatMap((p) => (p.status.containerStatuses ?? []).map((c) => c.image));
      assert.ok(
        images.length > 0 && images.every((i) => i.endsWith(`:${UPGRADE_TAG}`)),
        `every Postern pod runs the new image: ${images}`,
      );
    },
  );

  step('drains a delivery pod that is terminated in the middle of a long SMTP transaction', async () => {
    const inFlight = new Map<string, number>();
    relaySinkOpts.onMail = (_from, session) => {
      inFlight.set(session.remoteAddress, (inFlight.get(session.remoteAddress) ?? 0) + 1);
      return 'accept';
    };
    relaySinkOpts.delayMs = 4000; // each reply slow: a transaction lasts ~16 s
    const result = await load(8);
    const busy = await eventually(
      'a delivery pod in the middle of a transaction',
      async () => {
        const ps = (await pods('delivery-default')).filter(ready);
        return ps.find((p) => inFlight.has(p.status.podIP ?? ''));
      },
      120_000,
    );
    await k(['delete', 'pod', busy.metadata.name, '--wait=false']);
    relaySinkOpts.delayMs = 0;
    relaySinkOpts.onMail = undefined;
    const duplicates = await everyAcceptedArrives('drain', result);
    const fromBusy = relaySink.messages.filter(
      (m) => m.remoteAddress === busy.status.podIP && result.accepted.has(testIdOf(m.raw) ?? ''),
    ).length;
    console.log(
      `drain: ${fromBusy} messages completed by the terminating pod ${busy.metadata.name}, duplicates ${duplicates}`,
    );
    assert.ok(fromBusy > 0, 'the terminating pod finished its transaction instead of dropping it');
  });

  step(
    'is scraped by Prometheus through kubernetes_sd_configs and every dashboard query returns data',
    async () => {
      // Traffic for every kind of panel: delivered, deferred, bounced, and a refused sender.
      for (const to of ['ok@far.postern.test', 'gone@far.postern.test', 'later@far.postern.test']) {
        const r = await smtp(SENDER, to);
        assert.equal(r.code, 0, r.transcript);
      }
      await smtp('x@not-allowed.postern.test', 'y@far.postern.test', '--quit-after', 'RCPT');
      const port = await freePort();
      const api = `http://127.0.0.1:${port}`;
      const token = cluster.adminToken;
      cluster.writeFile(join(cluster.dir, 'prometheus', 'token'), token);
      cluster.writeFile(
        join(cluster.dir, 'prometheus', 'prometheus.yml'),
        prometheusConfig(cluster, join(cluster.dir, 'prometheus', 'token')),
      );
      prometheus = spawn(
        findPrometheus(),
        [
          `--config.file=${join(cluster.dir, 'prometheus', 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(cluster.dir, 'prometheus', 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: 'ignore' },
      );
      const query = async (expr: string) => {
        const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
        return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
      };
      const postern = (await pods()).filter(
        (p) => p.metadata.labels['app.kubernetes.io/component'] !== 'nats' && ready(p),
      );
      await eventually(
        'every Postern pod scraped and up',
        async () => {
          const r = await query(`up{namespace="${NS}"}`).catch(() => undefined);
          const series = (r?.data?.result ?? []) as { value: [number, string] }[];
          return series.length >= postern.length && series.every((s) => s.value[1] === '1');
        },
        120_000,
      );
      const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards/postern.json'), 'utf8')) as {
        panels: { title: string; targets?: { expr: string }[] }[];
      };
      const queries = dashboard.panels.flatMap((p) =>
        (p.targets ?? []).map((t) => ({
          title: p.title,
          expr: t.expr.replaceAll('$namespace', NS).replaceAll('$__rate_interval', '2m'),
        })),
      );
      assert.ok(queries.length > 10);
      for (const q of queries) {
        await eventually(
          `dashboard panel "${q.title}" returns data: ${q.expr}`,
          async () => ((await query(q.expr)).data?.result.length ?? 0) > 0,
          180_000,
        );
      }
    },
  );

  step('uninstalls with helm, and the namespace then deletes (no finalizer left behind)', async () => {
    const r = await cluster.helm(['uninstall', RELEASE, '-n', NS, '--wait', '--timeout', '5m'], 360_000);
    assert.equal(r.code, 0, r.stderr);
    const del = await cluster.kubectl(['delete', 'namespace', NS, '--timeout=180s'], { timeoutMs: 200_000 });
    assert.equal(
      del.code,
      0,
      `${del.stderr}\n${await cluster.kubectl(['get', 'maildomains,relaypolicies', '-A', '-o', 'yaml']).then((x) => x.stdout)}`,
    );
  });

  /** What a platform team would write for a bare-metal cluster without a load-balancer controller. */
  function userValues(): string {
    return `hostname: mail.postern.test
nats:
  jetstream:
    fileStorage:
      # JetStream reserves each stream's max_bytes up front (EVENTS 1 GiB, WEBHOOK_DEAD 256 MiB): 1Gi no longer fits.
      size: 2Gi
      storageClassName: local-static
  # hostPath volumes ignore fsGroup: let the chart hand them to the NATS user.
  volumePermissions:
    enabled: true
ingress:
  service:
    type: NodePort
delivery:
  scaleDownStabilizationSeconds: 30
  pools:
    - name: default
      minReplicas: 1
      maxReplicas: 3
      targetPerReplica: 50
    - name: bulk
      minReplicas: 0
      maxReplicas: 1
      targetPerReplica: 10
`;
  }

  function resources(): string {
    return `apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: inbound }
spec:
  domain: ${INBOUND_DOMAIN}
  inbound:
    enabled: true
    recipients: [alice, postmaster]
    deliverTo: { host: ${cluster.hostIp}, port: ${mailbox.port}, protocol: lmtp }
---
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: sender }
spec:
  domain: sender.postern.test
  outbound:
    dkim: { selector: k8s }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: apps }
spec:
  clients: { networks: [${cluster.hostIp}/32] }
  senders: { domains: [sender.postern.test] }
  delivery:
    smarthost: { host: ${cluster.hostIp}, port: ${relaySink.port}, tls: none }
    retry: { schedule: [2s, 5s], maxLifetime: 1h }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: bulk }
spec:
  clients: { networks: [${cluster.hostIp}/32] }
  senders: { domains: [bulk.postern.test] }
  delivery:
    pool: bulk
    smarthost: { host: ${cluster.hostIp}, port: ${relaySink.port}, tls: none }
    retry: { schedule: [2s, 5s], maxLifetime: 1h }
`;
  }

  async function diagnostics(): Promise<string> {
    const get = await cluster.kubectl(['get', 'pods,events', '-A', '-o', 'wide']);
    const logs = await cluster.kubectl([
      '-n',
      NS,
      'logs',
      '--all-containers',
      '--prefix',
      '--tail=20',
      '-l',
      'app.kubernetes.io/name=postern',
    ]);
    return `${get.stdout}\n${logs.stdout}${logs.stderr}\nkubelet:\n${cluster.logTail('kubelet', 20)}`;
  }
});

/** Prometheus on this machine discovering the pods through the API server, as a cluster Prometheus would. */
function prometheusConfig(cluster: Cluster, tokenFile: string): string {
  return `global: { scrape_interval: 2s, evaluation_interval: 2s }
scrape_configs:
  - job_name: postern-pods
    kubernetes_sd_configs:
      - role: pod
        api_server: https://${cluster.nodeIp}:6443
        namespaces: { names: [${NS}] }
        authorization: { credentials_file: ${tokenFile} }
        tls_config: { ca_file: ${cluster.caFile} }
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        regex: metrics
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
`;
}
