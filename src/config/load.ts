/**
 * Loading fulcrum.yaml: YAML → schema (shape, types, defaults) + cross-key checks → a normalized
 * Config, or one ConfigError listing every problem with its line.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type Document, LineCounter, parseDocument, type YAMLError } from 'yaml';
import { checkCertificateFiles } from './certificates.js';
import { checkConfig } from './checks.js';
import { ConfigError, type ConfigProblem, describeValue, formatPath, type PathProblem } from './errors.js';
import { errorMap, toProblems } from './issues.js';
import { locate } from './locate.js';
import { readFailure } from './pem.js';
import { ConfigSchema } from './schema.js';
import type { Config } from './types.js';

/** Guards against "billion laughs" alias expansion in hostile files. */
const MAX_ALIAS_COUNT = 1000;
const EXPECTED_TOP = 'expected a mapping with "listeners" and "pools"';

/** Reads and parses a config file; an unreadable file is a ConfigError too. */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file (${readFailure(error)})` }]);
  }
  return parseConfig(text, file);
}

/** Parses config text; `file` only names the source in messages. */
export function parseConfig(text: string, file: string): Config {
  const lines = new LineCounter();
  // merge: `<<: *defaults` is the usual way to share settings between servers or pools.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, merge: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((error) => yamlProblem(error, text, lines)),
    );
  }

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    throw new ConfigError(file, [{ path: '', message: `invalid YAML: ${(error as Error).message}` }]);
  }
  if (raw === null || raw === undefined) {
    throw new ConfigError(file, [{ path: '', message: `${EXPECTED_TOP}, got an empty file` }]);
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, [{ path: '', message: `${EXPECTED_TOP}, got ${describeValue(raw)}` }]);
  }

  resolvePoolTlsFiles(raw, dirname(resolve(file)));
  const result = ConfigSchema.safeParse(raw, { error: errorMap });
  const found = [...(result.success ? [] : toProblems(result.error.issues)), ...checkConfig(raw)];
  // Files named by the config are read only once the rest of it holds together.
  if (result.success && found.length === 0)
    found.push(...checkCertificateFiles(result.data, dirname(resolve(file))));
  if (found.length > 0 || !result.success) {
    throw new ConfigError(file, located(found, doc, lines));
  }
  return result.data;
}

/**
 * Pool `tls` files (`ca`, `cert`, `key`) named relative to the config file's folder, as listener
 * certificates are: resolved in the raw config before it is read, so every check sees the file.
 */
function resolvePoolTlsFiles(raw: object, baseDir: string): void {
  const pools = (raw as { pools?: unknown }).pools;
  if (!Array.isArray(pools)) return;
  for (const pool of pools) {
    const tls = (pool as { tls?: unknown } | null)?.tls;
    if (tls === null || typeof tls !== 'object') continue;
    const t = tls as Record<string, unknown>;
    for (const key of ['ca', 'cert', 'key']) {
      const file = t[key];
      if (typeof file === 'string' && file !== '' && !isAbsolute(file)) t[key] = resolve(baseDir, file);
    }
  }
}

function offsetOf(problem: PathProblem, doc: Document): number | undefined {
  if (problem.anchor) return locate(doc, problem.anchor, true);
  // A problem with the file as a whole has no line worth showing (it would always be 1).
  return problem.path.length > 0 ? locate(doc, problem.path) : undefined;
}

/** Formats paths, adds lines, drops duplicates, and sorts in file order (whole-file problems first). */
function located(found: PathProblem[], doc: Document, lines: LineCounter): ConfigProblem[] {
  const seen = new Set<string>();
  const problems: { problem: ConfigProblem; offset: number }[] = [];
  for (const problem of found) {
    const path = formatPath(problem.path);
    const key = `${path}\0${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const offset = offsetOf(problem, doc);
    problems.push({
      problem:
        offset === undefined
          ? { path, message: problem.message }
          : { path, message: problem.message, line: lines.linePos(offset).line },
      offset: offset ?? -1,
    });
  }
  // Array.prototype.sort is stable: problems at one place keep the order they were found in.
  return problems.sort((a, b) => a.offset - b.offset).map(({ problem }) => problem);
}

function yamlProblem(error: YAMLError, text: string, lines: LineCounter): ConfigProblem {
  // An unclosed quote or bracket is found at the end of the file: point at the last character
  // rather than at a line after the final newline.
  const end = text.trimEnd().length;
  const offset = error.pos[0] >= end && end > 0 ? end - 1 : error.pos[0];
  const { line, col } = lines.linePos(offset);
  return { path: '', message: `invalid YAML: ${error.message}`, line, column: col };
}
