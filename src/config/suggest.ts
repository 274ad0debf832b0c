/**
 * "Did you mean" for misspelt keys and enum values: the closest candidate by edit distance,
 * ignoring case, "-" and "_" (so "path_prefix" finds "pathPrefix", "roundrobin" "round-robin").
 */

export function closest(word: string, candidates: readonly string[]): string | undefined {
  const plain = simplify(word);
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(plain, simplify(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // About one edit per three letters, and at least one: short words have few plausible typos.
  const allowed = Math.max(1, Math.floor(plain.length / 3));
  if (bestDistance <= allowed) return best;
  // A shortened key ("path" for "pathPrefix") is far in edits but obvious to a reader.
  return plain.length >= 3
    ? candidates.find((candidate) => simplify(candidate).startsWith(plain))
    : undefined;
}

/** `; did you mean "x"?` or nothing. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const match = closest(word, candidates);
  return match === undefined ? '' : `; did you mean ${JSON.stringify(match)}?`;
}

function simplify(word: string): string {
  return word.toLowerCase().replace(/[-_]/g, '');
}

/** Optimal string alignment distance: a transposition ("wieght") counts as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i]!;
      const above = rows[i - 1]!;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(above[j]! + 1, row[j - 1]! + 1, above[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
      }
    }
  }
  return rows[a.length]![b.length]!;
}
