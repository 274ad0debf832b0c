/**
 * `p`, or a rejection once `ms` have passed: a store that stops answering (a hung Redis) must
 * not hold a request or a sync for long. The timer is cleared either way.
 */
export function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms}ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
