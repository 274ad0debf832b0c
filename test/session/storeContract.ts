/**
 * What every SessionStore must do, run against each real store: the promise API and the
 * express-session callback API, TTLs, expiry, large and concurrent sessions.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { BaseStore, SessionData } from '../../src/session/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sid = () => randomBytes(24).toString('base64url');

export interface ContractOptions {
  /** Largest session the store must take (bytes of JSON). */
  largeBytes: number;
}

export function storeContract(name: string, open: () => BaseStore, options: ContractOptions): void {
  /** What the promise form of `get` resolves for a missing session, in every store. */
  const missing = null;
  const withStore = (body: (store: BaseStore) => Promise<void>) => async () => {
    const store = open();
    try {
      await body(store);
    } finally {
      await store.close();
    }
  };

  test(
    `${name}: set, get, destroy`,
    withStore(async (store) => {
      const id = sid();
      assert.equal(await store.get(id), missing);
      await store.set(id, { count: 1, user: { name: 'ada' } }, 60);
      assert.deepEqual(await store.get(id), { count: 1, user: { name: 'ada' } });
      await store.set(id, { count: 2 }, 60);
      assert.deepEqual(await store.get(id), { count: 2 });
      await store.destroy(id);
      assert.equal(await store.get(id), missing);
      await store.destroy(id); // destroying what is gone is fine
    }),
  );

  test(
    `${name}: expiry and touch`,
    withStore(async (store) => {
      const short = sid();
      const touched = sid();
      await store.set(short, { n: 1 }, 1);
      await store.set(touched, { n: 2 }, 1);
      assert.equal(await store.touch(touched, 30), true);
      assert.equal(await store.touch(sid(), 30), false, 'touching a missing session says so');
      await sleep(2600); // memcached counts expiry in whole seconds
      assert.equal(await store.get(short), missing, 'expired');
      assert.deepEqual(await store.get(touched), { n: 2 }, 'touch extended it without changing it');
      await store.set(short, { n: 3 }, 0);
      assert.equal(await store.get(short), missing, 'a TTL of 0 deletes');
    }),
  );

  test(
    `${name}: TTL from cookie.expires when none is given`,
    withStore(async (store) => {
      const id = sid();
      await store.set(id, {
        cookie: { expires: new Date(Date.now() + 1000).toISOString(), originalMaxAge: 1000 },
        a: 1,
      });
      assert.equal((await store.get(id))?.a, 1);
      await sleep(2600); // memcached counts expiry in whole seconds
      assert.equal(await store.get(id), missing);
    }),
  );

  test(
    `${name}: a large session`,
    withStore(async (store) => {
      const id = sid();
      const blob = randomBytes(Math.floor((options.largeBytes * 3) / 4) - 64).toString('base64');
      const data: SessionData = {
        blob,
        items: Array.from({ length: 50 }, (_, i) => ({ i, tag: `item-${i}` })),
      };
      await store.set(id, data, 60);
      assert.deepEqual(await store.get(id), data);
    }),
  );

  test(
    `${name}: many concurrent sessions do not mix`,
    withStore(async (store) => {
      const ids = Array.from({ length: 200 }, sid);
      await Promise.all(ids.map((id, i) => store.set(id, { i, id }, 60)));
      const back = await Promise.all(ids.map((id) => store.get(id)));
      for (const [i, data] of back.entries()) assert.deepEqual(data, { i, id: ids[i] });
      // Concurrent writes to one session: the last one wins whole, never a mix.
      const one = sid();
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.set(one, { i, pad: 'x'.repeat(i * 10) }, 60)),
      );
      const last = (await store.get(one)) as { i: number; pad: string };
      assert.equal(last.pad, 'x'.repeat(last.i * 10));
      await Promise.all(ids.map((id) => store.destroy(id)));
    }),
  );

  test(
    `${name}: data that cannot be serialized is refused, and the store stays up`,
    withStore(async (store) => {
      const circular: Record<string, unknown> = { a: 1 };
      circular.self = circular;
      await assert.rejects(store.set(sid(), circular, 60), (err: unknown) => {
        assert.ok(err instanceof TypeError, String(err));
        return true;
      });
      assert.equal(store.available, true);
    }),
  );

  test(
    `${name}: express-session callback API`,
    withStore(async (store) => {
      const id = sid();
      const cookie = {
        originalMaxAge: 60_000,
        expires: new Date(Date.now() + 60_000).toISOString(),
        path: '/',
      };
      await new Promise<void>((resolve, reject) =>
        store.set(id, { cookie, views: 3 }, (err) => (err ? reject(err) : resolve())),
      );
      const got = await new Promise<SessionData | null | undefined>((resolve, reject) =>
        store.get(id, (err, session) => (err ? reject(err) : resolve(session))),
      );
      assert.equal(got?.views, 3);
      await new Promise<void>((resolve, reject) =>
        store.touch(id, { cookie, views: 3 }, (err) => (err ? reject(err) : resolve())),
      );
      await new Promise<void>((resolve, reject) =>
        store.destroy(id, (err) => (err ? reject(err) : resolve())),
      );
      const gone = await new Promise<unknown>((resolve, reject) =>
        store.get(id, (err, session) => (err ? reject(err) : resolve(session))),
      );
      assert.equal(gone, null, 'express-session expects null for a missing session');
    }),
  );
}
