/** How many worker processes a config asks for. */
import { availableParallelism } from 'node:os';
import type { Config } from '../config/types.js';

/** The number of workers a config asks for (`auto`: one per CPU); 1 means no supervisor. */
export function workerCount(config: Pick<Config, 'workers'>): number {
  return config.workers === 'auto' ? availableParallelism() : config.workers;
}
