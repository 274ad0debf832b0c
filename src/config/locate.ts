/**
 * Source positions for key paths: walks the parsed YAML Document (which keeps source ranges)
 * along a path and returns the offset of the deepest node found, so that a missing key points at
 * its mapping. A LineCounter turns the offset into a line.
 */
import { type Document, isAlias, isMap, isScalar, isSeq, type Node } from 'yaml';

/** Offset of the value at `path` (of its key when `atKey`), or of the nearest ancestor found. */
export function locate(doc: Document, path: readonly (string | number)[], atKey = false): number | undefined {
  let node: unknown = doc.contents;
  let found = asRanged(node);
  for (const [index, segment] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (!pair) break;
      // Point at the key when asked, and when the value is empty (`address:` has no range of its own).
      const last = index === path.length - 1;
      node = pair.value;
      found = (last && atKey) || !asRanged(node) ? (asRanged(pair.key) ?? found) : asRanged(node);
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      if (!asRanged(node)) break;
      found = asRanged(node);
    } else {
      break;
    }
  }
  return found?.range?.[0];
}

function asRanged(node: unknown): Node | undefined {
  return node && typeof node === 'object' && 'range' in node && (node as Node).range
    ? (node as Node)
    : undefined;
}
