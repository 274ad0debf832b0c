/**
 * Store options are checked by name: an option a store does not know is a TypeError that names
 * it and the ones it knows, never silently ignored (a misspelt `ttl` or an option of another
 * store would otherwise leave the app running with defaults it did not ask for).
 */

/** Options a store recognises by name but does not support, each with the reason why. */
export type UnsupportedOptions = Readonly<Record<string, string>>;

/** Throws a TypeError for the first option of `options` that `known` does not list. */
export function checkOptions(
  store: string,
  options: object | undefined,
  known: readonly string[],
  unsupported: UnsupportedOptions = {},
): void {
  if (options === undefined || options === null) return;
  if (typeof options !== 'object') throw new TypeError(`${store} options must be an object`);
  for (const name of Object.keys(options)) {
    if ((options as Record<string, unknown>)[name] === undefined) continue;
    if (known.includes(name)) continue;
    const why = Object.hasOwn(unsupported, name) ? unsupported[name] : undefined;
    if (why) throw new TypeError(`${store}: option "${name}" is not supported: ${why}`);
    throw new TypeError(`${store}: unknown option "${name}"; known options: ${[...known].sort().join(', ')}`);
  }
}

/** A positive number of seconds or milliseconds; anything else is a TypeError naming the option. */
export function positive(store: string, name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new TypeError(`${store}: option "${name}" must be a positive number, not ${String(value)}`);
  }
  return value;
}
