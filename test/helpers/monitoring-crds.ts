/**
 * Minimal CRDs for the two Prometheus Operator kinds the chart renders (ServiceMonitor, PrometheusRule), so the
 * server-side dry-run can check them. Hand-written subsets of monitoring.coreos.com/v1: only the fields the
 * chart uses are declared, without x-kubernetes-preserve-unknown-fields, so strict field validation still
 * rejects a misspelt field. Extend them when the chart uses a new field.
 */
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';

const str = { type: 'string' };
const strMap = { type: 'object', additionalProperties: { type: 'string' } };
const duration = { type: 'string', pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$' };

function crd(kind: string, plural: string, spec: object): V1CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.monitoring.coreos.com` },
    spec: {
      group: 'monitoring.coreos.com',
      scope: 'Namespaced',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: { apiVersion: str, kind: str, metadata: { type: 'object' }, spec },
            },
          },
        },
      ],
    },
  };
}

export const SERVICE_MONITOR_CRD = crd('ServiceMonitor', 'servicemonitors', {
  type: 'object',
  required: ['selector'],
  properties: {
    jobLabel: str,
    podTargetLabels: { type: 'array', items: str },
    namespaceSelector: {
      type: 'object',
      properties: { any: { type: 'boolean' }, matchNames: { type: 'array', items: str } },
    },
    selector: { type: 'object', properties: { matchLabels: strMap } },
    endpoints: {
      type: 'array',
      items: {
        type: 'object',
        properties: { port: str, path: str, scheme: str, interval: duration, scrapeTimeout: duration },
      },
    },
  },
});

export const PROMETHEUS_RULE_CRD = crd('PrometheusRule', 'prometheusrules', {
  type: 'object',
  properties: {
    groups: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name'],
        properties: {
          name: { type: 'string', minLength: 1 },
          interval: duration,
          rules: {
            type: 'array',
            items: {
              type: 'object',
              required: ['expr'],
              properties: {
                record: str,
                alert: str,
                expr: {
                  'x-kubernetes-int-or-string': true,
                  anyOf: [{ type: 'integer' }, { type: 'string' }],
                },
                for: duration,
                labels: strMap,
                annotations: strMap,
              },
            },
          },
        },
      },
    },
  },
});
