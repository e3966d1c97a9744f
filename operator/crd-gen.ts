/**
 * Generates the MailDomain and RelayPolicy CustomResourceDefinitions from the TypeBox schemas in
 * services/common/config/schema.ts (`KINDS`) — the one definition the code also validates with.
 *
 * Run `npm run crds` (or `node operator/crd-gen.ts`) to rewrite crds/ and charts/postern/crds/;
 * test/unit/operator/crd-gen.test.ts fails when the committed YAML differs from what this produces.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { API_GROUP, API_VERSION, KINDS } from '../services/common/config/schema.ts';

type Json = Record<string, unknown>;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where the generated files live: plain manifests and the Helm chart's crds/ (installed before templates). */
export const CRD_DIRS = [join(ROOT, 'crds'), join(ROOT, 'charts/postern/crds')];

/**
 * Kubernetes evaluates `pattern` with Go's RE2, which has no look-ahead. A leading length look-ahead
 * `(?=.{m,n}$)` (used by DOMAIN_PATTERN) becomes minLength/maxLength instead, which says the same thing.
 */
function re2Pattern(node: Json, pattern: string): string {
  const m = /^\^\(\?=\.\{(\d+),(\d+)\}\$\)/.exec(pattern);
  if (!m) return pattern;
  const [min, max] = [Number(m[1]), Number(m[2])];
  node['minLength'] = Math.max(Number(node['minLength'] ?? 0), min);
  node['maxLength'] = Math.min(Number(node['maxLength'] ?? max), max);
  return `^${pattern.slice(m[0].length)}`;
}

/**
 * Converts a TypeBox (JSON Schema) node into a structural OpenAPI v3 schema as apiextensions.k8s.io/v1
 * requires: every node typed, no `additionalProperties: false` next to `properties` (structural schemas
 * forbid it; unknown fields are pruned or, with fieldValidation=Strict, refused), unions of literals as
 * `enum`, no `$id`/`const`. CEL rules (`x-kubernetes-validations`) are kept as they are.
 */
export function toStructural(schema: unknown): Json {
  const src = schema as Json;
  const out: Json = {};
  const anyOf = src['anyOf'] as Json[] | undefined;
  if (anyOf) {
    if (!anyOf.every((s) => 'const' in s)) throw new Error('only unions of literals can become a CRD enum');
    out['type'] = typeof anyOf[0]!['const'] === 'number' ? 'number' : 'string';
    out['enum'] = anyOf.map((s) => s['const']);
  }
  for (const [key, value] of Object.entries(src)) {
    switch (key) {
      case 'anyOf':
      case '$id':
      case 'additionalProperties':
        break;
      case 'const':
        out['enum'] = [value];
        break;
      case 'properties':
        out['properties'] = Object.fromEntries(
          Object.entries(value as Json).map(([k, v]) => [k, toStructural(v)]),
        );
        break;
      case 'items':
        out['items'] = toStructural(value);
        break;
      case 'pattern':
        out['pattern'] = re2Pattern(out, value as string);
        break;
      default:
        out[key] = structuredClone(value);
    }
  }
  // `type` first keeps the YAML readable; key order has no meaning to the API server.
  return { type: out['type'], ...out };
}

const condition = {
  type: 'object',
  required: ['type', 'status'],
  properties: {
    type: { type: 'string', maxLength: 316 },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    reason: { type: 'string', maxLength: 1024 },
    message: { type: 'string', maxLength: 32768 },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
  },
};

/** The status both kinds report (written only by the operator, through the status subresource). */
export const STATUS_SCHEMA = {
  type: 'object',
  properties: {
    observedGeneration: { type: 'integer', format: 'int64' },
    conditions: {
      type: 'array',
      items: condition,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
    dkimDNSRecord: { type: 'string' },
    matchedDomains: { type: 'array', items: { type: 'string' } },
  },
};

const READY = '.status.conditions[?(@.type=="Ready")].status';
const PRINTER_COLUMNS: Record<string, Json[]> = {
  MailDomain: [
    { name: 'Domain', type: 'string', jsonPath: '.spec.domain' },
    { name: 'Ready', type: 'string', jsonPath: READY },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  RelayPolicy: [
    { name: 'Pool', type: 'string', jsonPath: '.spec.delivery.pool' },
    { name: 'Ready', type: 'string', jsonPath: READY },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  Webhook: [
    { name: 'URL', type: 'string', jsonPath: '.spec.url' },
    { name: 'Ready', type: 'string', jsonPath: READY },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

/** The CustomResourceDefinition object of one kind. */
export function buildCrd(kind: string): Json {
  const k = KINDS[kind];
  if (!k) throw new Error(`unknown kind ${kind}`);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${k.plural}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      scope: 'Namespaced',
      names: {
        kind,
        listKind: `${kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: k.shortNames,
        categories: ['postern'],
      },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS[kind],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: toStructural(k.spec),
                status: STATUS_SCHEMA,
              },
            },
          },
        },
      ],
    },
  };
}

/** File name → YAML text of every CRD, exactly as committed. */
export function renderCrds(): Map<string, string> {
  const files = new Map<string, string>();
  for (const kind of Object.keys(KINDS)) {
    const crd = buildCrd(kind);
    const name = (crd['metadata'] as { name: string }).name;
    files.set(
      `${name}.yaml`,
      `# Generated by operator/crd-gen.ts from services/common/config/schema.ts — do not edit.\n${stringify(crd, { lineWidth: 0 })}`,
    );
  }
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const dir of CRD_DIRS) {
    mkdirSync(dir, { recursive: true });
    for (const [file, text] of renderCrds()) writeFileSync(join(dir, file), text);
  }
  console.log(`wrote ${[...renderCrds().keys()].join(', ')} into ${CRD_DIRS.join(', ')}`);
}
