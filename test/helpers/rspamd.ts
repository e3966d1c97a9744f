/**
 * Test helper: the real rspamd (Debian package `rspamd`) as a foreground daemon on loopback, with a minimal
 * configuration of our own in a scratch directory instead of /etc/rspamd: only the `force_actions` plugin and a
 * few Lua rules keyed on the Subject, so every action can be produced deterministically. No redis, no fuzzy
 * storage, no remote maps (the antivirus module only when a test's clamd is given), and its resolver points at a dead loopback port, so it sends nothing off this machine.
 *
 * Subjects that trigger an action (GTUBE in the body → reject is rspamd's own built-in rule):
 * `postern-soft-reject`, `postern-greylist`, `postern-add-header`, `postern-rewrite-subject`; and
 * `postern-envelope` rejects with a message naming what rspamd saw (IP, Helo, From, Rcpt, User, Queue-Id).
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon } from './daemon.ts';
import { freePort } from './smtp-sink.ts';

export const RSPAMD = process.env['RSPAMD'] ?? '/usr/bin/rspamd';
const PLUGINS = '/usr/share/rspamd/plugins';

export interface TestRspamd {
  /** Base URL of the normal worker, e.g. http://127.0.0.1:PORT (POSTERN_CONTENT_FILTER_URL). */
  url: string;
  close(): Promise<void>;
}

const RULES = `
local function subject_has(text)
  return function(task)
    local subject = task:get_subject() or ''
    return subject:find(text, 1, true) ~= nil
  end
end
rspamd_config.POSTERN_SOFT = { callback = subject_has('postern-soft-reject'), score = 0.0 }
rspamd_config.POSTERN_GREY = { callback = subject_has('postern-greylist'), score = 0.0 }
rspamd_config.POSTERN_HEADER = { callback = subject_has('postern-add-header'), score = 0.0 }
rspamd_config.POSTERN_REWRITE = { callback = subject_has('postern-rewrite-subject'), score = 0.0 }
-- Echo the envelope rspamd received from the request headers, so a test can see each one arrived.
rspamd_config.POSTERN_ENVELOPE = {
  callback = function(task)
    if not subject_has('postern-envelope')(task) then return false end
    local rcpts = {}
    for _, r in ipairs(task:get_recipients('smtp') or {}) do table.insert(rcpts, r.addr) end
    local from = (task:get_from('smtp') or {})[1]
    local seen = string.format('ip=%s helo=%s from=%s rcpt=%s user=%s queue-id=%s',
      tostring(task:get_from_ip()), tostring(task:get_helo()), from and from.addr or '<>',
      table.concat(rcpts, ';'), tostring(task:get_user()), tostring(task:get_queue_id()))
    task:set_pre_result('reject', seen, 'postern-test')
    return true
  end,
  score = 0.0,
}
`;

/** rspamd's antivirus module asking clamd, as docs/ingress.md "ClamAV through rspamd" tells users to. */
function antivirus(clamd: string): string {
  return `
antivirus {
  clamav {
    type = "clamav";
    servers = "${clamd}";
    action = "reject";
    symbol = "CLAM_VIRUS";
    message = '\${SCANNER}: virus found: "\${VIRUS}"';
    scan_mime_parts = true;
    log_clean = true;
  }
}
`;
}

function config(dir: string, port: number, clamd?: string): string {
  return `
options {
  pidfile = "${dir}/rspamd.pid";
  tempdir = "${dir}";
  dns { nameserver = ["127.0.0.1:1"]; timeout = 1s; retransmits = 1; }
}
logging { type = "console"; level = "notice"; }
lua = "${dir}/rules.lua";
modules { path = "${dir}/plugins"; }
actions { reject = 15; "add header" = 6; greylist = 4; }
worker "normal" {
  bind_socket = "127.0.0.1:${port}";
  count = 1;
  task_timeout = 8s;
}
force_actions {
  rules {
    SOFT { action = "soft reject"; expression = "POSTERN_SOFT"; message = "Postern test: please try again later"; }
    GREY { action = "greylist"; expression = "POSTERN_GREY"; }
    HEADER { action = "add header"; expression = "POSTERN_HEADER"; }
    REWRITE { action = "rewrite subject"; expression = "POSTERN_REWRITE"; }
  }
}
${clamd ? antivirus(clamd) : ''}`;
}

/** `clamd`: a clamd TCP address (test/helpers/clamd.ts) for the antivirus module; without it no scanning. */
export async function startTestRspamd(opts: { clamd?: string } = {}): Promise<TestRspamd> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-rspamd-'));
  const port = await freePort('127.0.0.1');
  writeFileSync(join(dir, 'rules.lua'), RULES);
  writeFileSync(join(dir, 'rspamd.conf'), config(dir, port, opts.clamd));
  // Only the plugin we configure: the default set would fetch remote maps and query public DNS lists.
  const plugins = join(dir, 'plugins');
  mkdirSync(plugins);
  for (const plugin of ['force_actions', ...(opts.clamd ? ['antivirus'] : [])]) {
    symlinkSync(join(PLUGINS, `${plugin}.lua`), join(plugins, `${plugin}.lua`));
  }
  // As root rspamd wants a user to drop to; -i lets it keep root in a throwaway test.
  const asRoot = process.getuid?.() === 0 ? ['-u', 'root', '-g', 'root', '-i'] : [];
  const daemon = startDaemon(RSPAMD, ['-f', ...asRoot, '-c', join(dir, 'rspamd.conf')], dir);
  const url = `http://127.0.0.1:${port}`;
  // rspamd compiles its TLD list at start (seconds on a small machine): ready when /ping answers.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await fetch(`${url}/ping`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (daemon.exited() || Date.now() > deadline) {
      await daemon.close();
      throw new Error(`rspamd did not answer on ${url}: ${daemon.stderr().slice(-2000)}`);
    }
    await sleep(200);
  }
  return { url, close: daemon.close };
}
