/**
 * The two shaping data files (provider-rules.yaml, response-rules.yaml next to this module, or the files named by
 * POSTERN_PROVIDER_RULES_FILE / POSTERN_RESPONSE_RULES_FILE): loaded once, validated with TypeBox, matched here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse } from 'yaml';
import { DURATION_PATTERN, parseDuration } from '../../common/durations.ts';

const Count = Type.Integer({ minimum: 1 });
const Limits = Type.Object(
  {
    maxConnections: Type.Optional(Count),
    messagesPerConnection: Type.Optional(Count),
    ratePerMinute: Type.Optional(Count),
    connectionsPerMinute: Type.Optional(Count),
  },
  { additionalProperties: false },
);

const ProviderRuleSchema = Type.Object(
  {
    id: Type.String({ minLength: 1 }),
    /** MX host suffixes, each starting with a dot. */
    mx: Type.Array(Type.String({ pattern: '^\\.[a-z0-9.-]+$' }), { minItems: 1 }),
    limits: Limits,
  },
  { additionalProperties: false },
);
export type ProviderRule = Static<typeof ProviderRuleSchema>;

const ResponseRuleSchema = Type.Object(
  {
    id: Type.String({ minLength: 1 }),
    match: Type.String({ minLength: 1 }),
    action: Type.Union([Type.Literal('suspend'), Type.Literal('throttle'), Type.Literal('slowdown')]),
    duration: Type.String({ pattern: DURATION_PATTERN }),
    ratePerMinute: Type.Optional(Count),
    maxConnections: Type.Optional(Count),
    factor: Type.Optional(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 })),
    fromRatePerMinute: Type.Optional(Count),
    /** The real reply the rule was written for (checked by the table test). */
    example: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);
type ResponseRuleDoc = Static<typeof ResponseRuleSchema>;

export interface ResponseRule extends Omit<ResponseRuleDoc, 'match' | 'duration'> {
  pattern: RegExp;
  durationMs: number;
}

const HERE = import.meta.dirname;
export const PROVIDER_RULES_FILE = join(HERE, 'provider-rules.yaml');
export const RESPONSE_RULES_FILE = join(HERE, 'response-rules.yaml');

function loadList<T>(file: string, schema: Parameters<typeof Value.Errors>[0]): T[] {
  const doc = parse(readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(doc)) throw new Error(`${file}: expected a list of rules`);
  return doc.map((rule, i) => {
    const errors = [...Value.Errors(schema, rule)];
    if (errors.length)
      throw new Error(`${file}: rule ${i + 1}: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`);
    return rule as T;
  });
}

export function loadProviderRules(file = PROVIDER_RULES_FILE): ProviderRule[] {
  return loadList<ProviderRule>(file, ProviderRuleSchema);
}

export function loadResponseRules(file = RESPONSE_RULES_FILE): ResponseRule[] {
  return loadList<ResponseRuleDoc>(file, ResponseRuleSchema).map(({ match, duration, ...rest }) => {
    if (rest.action === 'throttle' && !rest.ratePerMinute && !rest.maxConnections)
      throw new Error(`${file}: rule ${rest.id}: throttle needs ratePerMinute or maxConnections`);
    return { ...rest, pattern: new RegExp(match, 'i'), durationMs: parseDuration(duration) };
  });
}

/** Does an MX host end with a suffix (`.google.com` matches `aspmx.l.google.com`, not `notgoogle.com`)? */
export function hostHasSuffix(host: string, suffix: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  const s = suffix.toLowerCase();
  return h.endsWith(s) || h === s.slice(1);
}

/** The first provider rule with a suffix any of the site's MX hosts ends with. */
export function providerRuleFor(rules: ProviderRule[], mxHosts: string[]): ProviderRule | undefined {
  return rules.find((r) => r.mx.some((suffix) => mxHosts.some((h) => hostHasSuffix(h, suffix))));
}

/** The first response rule matching a reply (or connection error text). */
export function responseRuleFor(rules: ResponseRule[], reply: string): ResponseRule | undefined {
  return rules.find((r) => r.pattern.test(reply.trim()));
}
