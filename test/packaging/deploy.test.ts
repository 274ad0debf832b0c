/**
 * The container image and the systemd unit (issue 19 item 4), tested without a container
 * runtime: the Dockerfile's ENTRYPOINT + CMD and its HEALTHCHECK run as plain processes against
 * the image's default config (paths under /app and /etc/fulcrum mapped to this checkout and a
 * temp dir), SIGTERM ends the balancer with exit 0; the unit file passes `systemd-analyze verify`
 * when systemd-analyze is installed and has Restart=always and ExecReload with SIGHUP.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CliProcess, freePort, runCli, tempDir } from '../helpers/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TIMEOUT = { timeout: 60_000 };
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

/** The JSON-array form of a Dockerfile instruction (continuation lines joined). */
function instruction(name: string): string[] {
  const text = dockerfile.replace(/\\\n\s*/g, ' ');
  const m = new RegExp(`^${name}\\s+(?:--\\S+\\s+)*(?:CMD\\s+)?(\\[.*\\])\\s*$`, 'm').exec(text);
  assert.ok(m, `no ${name} [...] in the Dockerfile`);
  return JSON.parse(m[1]!) as string[];
}

test('the image: small base, non-root user, config under /etc/fulcrum, SIGTERM, health check', () => {
  assert.match(dockerfile, /^FROM node:20-alpine$/m);
  assert.match(dockerfile, /^USER node$/m);
  assert.match(dockerfile, /^STOPSIGNAL SIGTERM$/m);
  assert.match(dockerfile, /^HEALTHCHECK /m);
  // What the image copies exists here.
  for (const m of dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)) {
    for (const source of m[1]!.split(' '))
      assert.ok(existsSync(join(ROOT, source)), `COPY ${source}: missing`);
  }
});

test("the image's entrypoint and health check, run as plain processes", TIMEOUT, async () => {
  const [entry, cmd, health] = [instruction('ENTRYPOINT'), instruction('CMD'), instruction('HEALTHCHECK')];
  const dir = tempDir('fulcrum-image-');
  const [listen, admin] = [await freePort(), await freePort()];
  // The image's default config, on free ports.
  const config = dir.write(
    'fulcrum.yaml',
    readFileSync(join(ROOT, 'deploy/fulcrum.example.yaml'), 'utf8')
      .replace('127.0.0.1:9000', `127.0.0.1:${admin}`)
      .replace('0.0.0.0:8080', `127.0.0.1:${listen}`),
  );
  const local = (args: string[]) =>
    args.map((a) => a.replace('/app/', ROOT).replace('/etc/fulcrum/fulcrum.yaml', config));
  const [node, main, ...startArgs] = local([...entry, ...cmd]);
  assert.equal(node, 'node');
  assert.equal(main, join(ROOT, 'dist/src/cli/main.js'));
  assert.deepEqual(startArgs, ['start', '-c', config]);
  const [, , ...healthArgs] = local(health);
  try {
    // Unhealthy before the balancer runs, healthy while it does.
    assert.equal((await runCli(healthArgs)).code, 1);
    const proc = new CliProcess(startArgs, { cwd: dir.path });
    await proc.waitForPort(listen);
    const healthy = await runCli(healthArgs);
    assert.equal(healthy.code, 0, healthy.stderr);
    // docker stop: SIGTERM, then a clean exit.
    assert.deepEqual(await proc.stop('SIGTERM', 10_000), { code: 0, signal: null }, proc.output);
  } finally {
    dir.remove();
  }
});

test('the systemd unit: Restart=always, ExecReload with SIGHUP, passes systemd-analyze verify', async (t) => {
  const unit = join(ROOT, 'deploy/fulcrum.service');
  const text = readFileSync(unit, 'utf8');
  assert.match(text, /^Restart=always$/m);
  assert.match(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(text, /^KillSignal=SIGTERM$/m);
  if (!existsSync('/usr/bin/systemd-analyze')) {
    t.skip('systemd-analyze is not installed');
    return;
  }
  const out = await new Promise<{ code: number; text: string }>((resolve) => {
    execFile('/usr/bin/systemd-analyze', ['verify', unit], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, text: stdout + stderr }),
    );
  });
  assert.equal(out.code, 0, out.text);
  assert.equal(out.text.trim(), '', out.text);
});
