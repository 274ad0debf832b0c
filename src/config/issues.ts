/**
 * zod issues → problems in our wording ("expected one of http, tcp, udp, dns, got \"htp\"",
 * "missing required key \"address\"", "unknown key \"wieght\"; did you mean \"weight\"?") instead
 * of zod's default messages. `errorMap` words each issue while zod still has the input and the
 * schema at hand; `toProblems` then splits and re-anchors the finished issues.
 */
import type { z } from 'zod';
import { describeValue, type PathProblem } from './errors.js';
import { didYouMean } from './suggest.js';

type RawIssue = z.core.$ZodRawIssue;

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  record: 'a mapping',
};

/** Per-parse zod error map. Messages set on the schema itself (e.g. empty lists) take precedence. */
export function errorMap(issue: RawIssue): string {
  const key = issue.path?.at(-1);
  if (issue.input === undefined && key !== undefined)
    return `missing required key ${JSON.stringify(String(key))}`;
  const found = describeValue(issue.input);
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${found}`;
    case 'invalid_value': {
      const values = issue.values.map(String);
      const hint = typeof issue.input === 'string' ? didYouMean(issue.input, values) : '';
      return `expected one of ${values.join(', ')}, got ${found}${hint}`;
    }
    case 'unrecognized_keys': {
      // One line per key (toProblems splits them), each with a suggestion from the known keys.
      const shape = (issue.inst as { _zod?: { def?: { shape?: object } } } | undefined)?._zod?.def?.shape;
      const known = shape ? Object.keys(shape) : [];
      return issue.keys
        .map((name) => `unknown key ${JSON.stringify(name)}${didYouMean(name, known)}`)
        .join('\n');
    }
    case 'too_small':
      return `expected at least ${issue.minimum} entries, got ${found}`;
    default:
      return `unexpected value ${found}`;
  }
}

/**
 * Finished zod issues → located-ready problems. A missing key is reported on its mapping (the
 * key has no line of its own); each unknown key becomes its own problem, pointing at that key.
 */
export function toProblems(issues: readonly z.core.$ZodIssue[]): PathProblem[] {
  const problems: PathProblem[] = [];
  for (const issue of issues) {
    const path = issue.path.map((segment) => (typeof segment === 'number' ? segment : String(segment)));
    if (issue.code === 'unrecognized_keys') {
      const messages = issue.message.split('\n');
      issue.keys.forEach((name, index) => {
        problems.push({ path, message: messages[index] ?? issue.message, anchor: [...path, name] });
      });
    } else if (issue.message.startsWith('missing required key ')) {
      problems.push({ path: path.slice(0, -1), message: issue.message });
    } else {
      problems.push({ path, message: issue.message });
    }
  }
  return problems;
}
