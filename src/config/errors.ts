/**
 * Configuration errors. Every problem names the key path, what was expected and what was found;
 * a ConfigError collects all the problems of one file so that a user fixes them in one go.
 *
 * One format everywhere, compiler style: `FILE[:LINE[:COLUMN]]: [PATH: ]MESSAGE`, for example
 * `fulcrum.yaml:14: pools[0].servers[1].address: expected host:port, got "localhost"`.
 */

export interface ConfigProblem {
  /** Key path such as `pools[0].servers[1].address`; empty for the file as a whole. */
  path: string;
  /** What was expected and what was found, e.g. `expected a number, got "abc"`. */
  message: string;
  /** 1-based line in the file, when known. */
  line?: number;
  /** 1-based column, given for YAML syntax errors only. */
  column?: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly file: string;
  readonly problems: ConfigProblem[];

  constructor(file: string, problems: ConfigProblem[]) {
    super(problems.map((problem) => formatProblem(file, problem)).join('\n'));
    this.file = file;
    this.problems = problems;
  }
}

/** One problem as one line of text. */
export function formatProblem(file: string, problem: ConfigProblem): string {
  let where = file;
  if (problem.line !== undefined) {
    where += `:${problem.line}`;
    if (problem.column !== undefined) where += `:${problem.column}`;
  }
  return problem.path ? `${where}: ${problem.path}: ${problem.message}` : `${where}: ${problem.message}`;
}

/**
 * A single value was rejected. Thrown by the value parsers (durations, addresses, ...) with the
 * message `expected <expected>, got <found>`, so that the loader can reuse it verbatim under a
 * key path and other callers (the CLI flags) get a useful message too.
 */
export class ValueError extends Error {
  override readonly name = 'ValueError';

  constructor(
    readonly expected: string,
    readonly input: unknown,
    options: { hint?: string; found?: string } = {},
  ) {
    const found = options.found ?? describeValue(input);
    super(`expected ${expected}, got ${found}${options.hint ? ` (${options.hint})` : ''}`);
  }
}

const MAX_SHOWN = 60;

/** How a found value is shown: scalars as JSON (strings quoted), collections by kind. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return Object.keys(value).length === 0 ? 'an empty mapping' : 'a mapping';
  if (typeof value === 'string') {
    return value.length > MAX_SHOWN
      ? `${JSON.stringify(value.slice(0, MAX_SHOWN))}...`
      : JSON.stringify(value);
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value === 'bigint' ? String(value) : JSON.stringify(value);
}

const IDENTIFIER = /^[A-Za-z_$][\w$-]*$/;

/** `['pools', 0, 'servers', 1]` → `pools[0].servers[1]`; odd keys are bracketed and quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (typeof segment === 'string' && IDENTIFIER.test(segment)) text += text ? `.${segment}` : segment;
    else text += `[${JSON.stringify(String(segment))}]`;
  }
  return text;
}

/** A problem before it is located in the file: the path as segments, for finding its line. */
export interface PathProblem {
  path: (string | number)[];
  message: string;
  /** Take the line from the key at the end of this path rather than from the value at `path`. */
  anchor?: (string | number)[];
}
