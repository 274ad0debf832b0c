import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Pool } from '../../src/core/pool.js';
import { SniRouter } from '../../src/proxy/tcp/sniRouter.js';

const pool = (name: string) => ({ name }) as Pool;
const exact = pool('exact');
const wild = pool('wild');
const deeper = pool('deeper');

const router = new SniRouter([
  { sni: 'a.internal.example', pool: exact },
  { sni: '*.Internal.Example', pool: wild },
  { sni: '*.b.internal.example', pool: deeper }, // never reached: the wildcard above wins first
]);

test('first match wins: exact names, wildcards at any depth, else the default (undefined)', () => {
  const cases: Array<[string | null, Pool | undefined]> = [
    ['a.internal.example', exact],
    ['b.internal.example', wild],
    ['x.b.internal.example', wild],
    ['internal.example', undefined],
    ['xinternal.example', undefined],
    ['a.internal.example.org', undefined],
    [null, undefined],
  ];
  for (const [sni, want] of cases) assert.equal(router.select(sni), want, String(sni));
});
