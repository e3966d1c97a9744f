import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Supervisor } from '../../../services/local/supervisor.ts';

describe('local-mode service processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-supervisor-'));
  const supervisor = new Supervisor();
  after(async () => {
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('run with the V8 old-space and semi-space caps they are given (docs/bench.md "Memory")', async () => {
    // A stand-in service: reports the heap limit V8 really applies, then stays up until stopped.
    const script = join(dir, 'service.ts');
    writeFileSync(
      script,
      `import { getHeapStatistics } from 'node:v8';
process.stdout.write(JSON.stringify({ msg: 'ready', execArgv: process.execArgv, limit: getHeapStatistics().heap_size_limit }) + '\\n');
setInterval(() => {}, 1000);
`,
    );
    const { ready } = await supervisor.start({ name: 'svc', script, env: {}, heapMiB: 96, semiSpaceMiB: 2 });
    assert.deepEqual(ready['execArgv'], ['--max-old-space-size=96', '--max-semi-space-size=2']);
    // V8's heap limit is the old space plus the young generation: well under 96 MiB + V8's default young gen.
    const limitMiB = Number(ready['limit']) / 1024 ** 2;
    assert.ok(limitMiB >= 96 && limitMiB < 96 + 16, `heap limit ${limitMiB} MiB`);
  });
});
