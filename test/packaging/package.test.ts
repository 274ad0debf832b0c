/**
 * What `npm pack` (and so a git or registry install) ships (issue 19 items 1 and 2): the built
 * code that `bin` and `exports` point to, the dashboard, the schema and the docs, and nothing of
 * the tests or the TypeScript sources. The packed files, unpacked into a project's node_modules,
 * import and run there. `prepare` builds dist/src on a git install.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string }>;
  scripts: Record<string, string>;
};
const TIMEOUT = { timeout: 60_000 };

/** `npm pack` without its scripts (dist/ is built already): the list, or the tarball in `dir`. */
function pack(args: string[], cwd = ROOT): string {
  return execFileSync('npm', ['pack', '--ignore-scripts', ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 45_000,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

test(
  'npm pack ships the built code, the dashboard, the schema and the docs, and no tests or sources',
  TIMEOUT,
  () => {
    const files = (
      JSON.parse(pack(['--dry-run', '--json'])) as Array<{ files: Array<{ path: string }> }>
    )[0]!.files.map((f) => f.path);
    const shipped = new Set(files);
    const needed = [
      'package.json',
      'README.md',
      'CHANGELOG.md',
      'fulcrum.schema.json',
      'docs/configuration.md',
      'docs/admin.md',
      'src/admin/dashboard/index.html',
      'src/admin/dashboard/app.js',
      'src/admin/dashboard/style.css',
      ...Object.values(PKG.bin).map((p) => p.replace(/^\.\//, '')),
      ...Object.values(PKG.exports).flatMap((e) => [e.types, e.default].map((p) => p.replace(/^\.\//, ''))),
    ];
    for (const file of needed) assert.ok(shipped.has(file), `${file} is not in the package`);
    const stray = files.filter(
      (f) =>
        f.startsWith('dist/test/') ||
        f.startsWith('dist/bench/') ||
        f.endsWith('.map') ||
        /^src\/.*\.ts$/.test(f),
    );
    assert.deepEqual(stray, []);
    assert.equal(PKG.scripts.prepare, 'tsc -p tsconfig.build.json', 'a git install builds dist/src');
  },
);

test(
  'the packed package imports fulcrum/session and runs fulcrum --version inside another project',
  TIMEOUT,
  () => {
    const dir = tempDir('fulcrum-pack-');
    try {
      const tarball = pack(['--pack-destination', dir.path]).trim().split('\n').at(-1)!;
      const project = join(dir.path, 'app');
      mkdirSync(join(project, 'node_modules'), { recursive: true });
      dir.write('app/package.json', '{"name": "app", "version": "9.9.9", "type": "module"}');
      execFileSync('tar', ['-xzf', join(dir.path, tarball), '-C', join(project, 'node_modules')]);
      const installed = join(project, 'node_modules', 'fulcrum');
      execFileSync('mv', [join(project, 'node_modules', 'package'), installed]);
      // Its dependencies: this checkout's (no registry in a test).
      symlinkSync(join(ROOT, 'node_modules'), join(installed, 'node_modules'));
      const imported = execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          "const s = await import('fulcrum/session'); console.log(typeof s.MemoryStore)",
        ],
        { cwd: project, encoding: 'utf8' },
      );
      assert.equal(imported, 'function\n');
      const printed = execFileSync(process.execPath, [join(installed, PKG.bin.fulcrum!), '--version'], {
        cwd: project,
        encoding: 'utf8',
        env: { ...process.env, npm_package_version: '9.9.9' },
      });
      assert.equal(printed, `${PKG.version}\n`);
    } finally {
      dir.remove();
    }
  },
);
