/**
 * `-c` defaults to `./fulcrum.yaml` when that file exists, for every command that reads a config
 * file, so that in a directory holding one `fulcrum start` and `fulcrum status` just work.
 */
import { existsSync } from 'node:fs';

/** The config file name looked for in the working directory. */
export const DEFAULT_CONFIG = 'fulcrum.yaml';

/** The `-c` value given, else `fulcrum.yaml` when it exists in the working directory. */
export function configOrDefault(given: string | undefined): string | undefined {
  if (given !== undefined) return given;
  return existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined;
}
