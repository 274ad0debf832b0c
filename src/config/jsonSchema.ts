/**
 * The config file's JSON Schema, generated from the zod schema (zod 4's `toJSONSchema`, the
 * input side: what a user writes), with the value parsers' hints (jsonHints.ts). `fulcrum schema`
 * prints it; fulcrum.schema.json at the package root is this, kept in sync by a test, for editors:
 * `# yaml-language-server: $schema=node_modules/fulcrum/fulcrum.schema.json` atop a fulcrum.yaml.
 */
import { z } from 'zod';
import { ConfigSchema } from './schema.js';

/** The JSON Schema of a fulcrum.yaml, as a plain object. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ConfigSchema, {
    io: 'input',
    // Checks made in code (cross-references, L4-only keys) are not expressible; `check` has them.
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  const { $schema, ...rest } = schema;
  return { $schema, title: 'Fulcrum config (fulcrum.yaml)', ...rest };
}

/** The schema as the checked-in file holds it: two-space JSON and a final newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
