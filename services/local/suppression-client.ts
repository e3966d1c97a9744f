/**
 * `postern suppression list|show|add|remove|export|import` over the queue admin API
 * (services/queue/admin-suppression.ts). CSV is read with csv-parse and written with csv-stringify (RFC 4180
 * quoting); an import is checked line by line first and refused as a whole when any line is bad, every bad line
 * named with its line number (`--skip-invalid` imports the good lines anyway).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import type { ListedSuppression } from '../common/suppression.ts';
import { checkInput, type SuppressionInput } from '../queue/admin-suppression.ts';
import { callAdmin, QueueClientError } from './queue-client.ts';

/** The CSV columns, in export order; an import needs `address` and reads the others when present. */
export const CSV_COLUMNS = ['address', 'reason', 'note', 'response', 'created', 'expires'] as const;

export interface SuppressionOptions {
  domain?: string;
  json?: boolean;
  format?: string;
  reason?: string;
  note?: string;
  expires?: string;
  skipInvalid?: boolean;
}

/** One line per entry: address, reason, expiry, then what caused it. */
export function formatSuppressions(entries: ListedSuppression[]): string {
  if (!entries.length) return 'No suppressed addresses\n';
  const lines = entries.map((e) => {
    const why = [e.detail, e.response].filter(Boolean).join(': ');
    return `${e.address ?? `(key ${e.key.slice(0, 16)}…)`}  [${e.reason}, since ${e.createdAt ?? '?'}, until ${e.until}]${why ? `  ${why}` : ''}`;
  });
  return `${lines.join('\n')}\n-- ${entries.length} address(es)\n`;
}

export function toCsv(entries: ListedSuppression[]): string {
  return stringify(
    entries.map((e) => [
      e.address ?? '',
      e.reason,
      e.detail ?? '',
      e.response ?? '',
      e.createdAt ?? '',
      e.until,
    ]),
    { header: true, columns: [...CSV_COLUMNS] },
  );
}

/**
 * Reads an import CSV: a header line naming the columns (`address` required; `reason`, `note`, `expires`
 * optional; others ignored, so an export imports back), or no header and the address in the first column.
 * Returns the valid entries and one message per bad line, with its line number in the file.
 */
export function readImportCsv(
  text: string,
  defaults: { reason?: string; expires?: string } = {},
): { entries: SuppressionInput[]; errors: string[] } {
  let rows: { record: string[]; line: number }[];
  try {
    rows = (
      parse(text, {
        info: true,
        relax_column_count: true,
        skip_empty_lines: true,
        trim: true,
      }) as unknown as {
        record: string[];
        info: { lines: number };
      }[]
    ).map((r) => ({ record: r.record, line: r.info.lines }));
  } catch (err) {
    return { entries: [], errors: [(err as Error).message] };
  }
  const first = rows[0]?.record.map((c) => c.toLowerCase()) ?? [];
  const header = first.includes('address');
  const col = (name: string) => (header ? first.indexOf(name) : name === 'address' ? 0 : -1);
  const at = (record: string[], name: string) => {
    const i = col(name);
    return i >= 0 && record[i] ? record[i] : undefined;
  };
  const entries: SuppressionInput[] = [];
  const errors: string[] = [];
  for (const { record, line } of header ? rows.slice(1) : rows) {
    const input: SuppressionInput = {
      address: at(record, 'address') ?? '',
      ...((at(record, 'reason') ?? defaults.reason)
        ? { reason: at(record, 'reason') ?? defaults.reason }
        : {}),
      ...(at(record, 'note') ? { note: at(record, 'note') } : {}),
      ...((at(record, 'expires') ?? defaults.expires)
        ? { expires: at(record, 'expires') ?? defaults.expires }
        : {}),
    };
    if (!input.address) {
      errors.push(`line ${line}: no address`);
      continue;
    }
    const checked = checkInput(input);
    if (typeof checked === 'string') errors.push(`line ${line}: ${checked}`);
    else entries.push(input);
  }
  return { entries, errors };
}

export async function suppressionCommand(
  base: string,
  action: string,
  arg: string | undefined,
  opts: SuppressionOptions,
): Promise<string> {
  const need = (what: string) => {
    if (!arg) throw new QueueClientError(`suppression ${action} needs ${what}`);
    return arg;
  };
  const list = async () => {
    const q = new URLSearchParams(opts.domain ? { domain: opts.domain } : {});
    return (await callAdmin(base, 'GET', `/suppression?${q}`)) as ListedSuppression[];
  };
  switch (action) {
    case 'list': {
      const entries = await list();
      return opts.json ? `${JSON.stringify(entries, null, 2)}\n` : formatSuppressions(entries);
    }
    case 'show':
      return `${JSON.stringify(await callAdmin(base, 'GET', `/suppression/${encodeURIComponent(need('an address'))}`), null, 2)}\n`;
    case 'add': {
      const input: SuppressionInput = {
        address: need('an address'),
        ...(opts.reason ? { reason: opts.reason } : {}),
        ...(opts.note ? { note: opts.note } : {}),
        ...(opts.expires ? { expires: opts.expires } : {}),
      };
      const checked = checkInput(input);
      if (typeof checked === 'string') throw new QueueClientError(checked);
      await callAdmin(base, 'POST', '/suppression', { entries: [input] });
      return `suppressed ${input.address} (${checked.reason})\n`;
    }
    case 'remove':
      await callAdmin(base, 'DELETE', `/suppression/${encodeURIComponent(need('an address'))}`);
      return `removed ${arg}\n`;
    case 'export': {
      const format = opts.format ?? 'csv';
      if (format !== 'csv' && format !== 'json')
        throw new QueueClientError(`--format must be csv or json (got "${format}")`);
      const entries = await list();
      return format === 'json' ? `${JSON.stringify(entries, null, 2)}\n` : toCsv(entries);
    }
    case 'import': {
      const file = need('a CSV file');
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new QueueClientError(`cannot read ${file}: ${(err as Error).message}`);
      }
      const { entries, errors } = readImportCsv(text, {
        ...(opts.reason ? { reason: opts.reason } : {}),
        ...(opts.expires ? { expires: opts.expires } : {}),
      });
      if (errors.length && !opts.skipInvalid) {
        throw new QueueClientError(
          `${file}: ${errors.length} bad line(s), nothing imported (fix them, or pass --skip-invalid):\n${errors.join('\n')}`,
        );
      }
      if (entries.length) await callAdmin(base, 'POST', '/suppression', { entries });
      const skipped = errors.length ? `; skipped ${errors.length} bad line(s):\n${errors.join('\n')}` : '';
      return `imported ${entries.length} address(es) from ${file}${skipped}\n`;
    }
    default:
      throw new QueueClientError(
        `unknown suppression action "${action}" (list, show, add, remove, export, import)`,
      );
  }
}
