// talisman ships no type declarations (and there is no @types package); these cover only the modules compare.ts uses.
// Both are CommonJS modules whose module.exports is the function, so they arrive as the default import.

declare module 'talisman/metrics/jaro-winkler.js' {
  /** Jaro–Winkler similarity in [0, 1] (Winkler 1990: prefix scale 0.1, prefix of at most 4, boost above 0.7). */
  const jaroWinkler: (a: string, b: string) => number;
  export default jaroWinkler;
}

declare module 'talisman/metrics/damerau-levenshtein.js' {
  /** Restricted Damerau–Levenshtein distance (insertions, deletions, substitutions, adjacent transpositions). */
  const damerauLevenshtein: ((a: string, b: string) => number) & {
    /** The distance when it is at most `max`, else Infinity; stops early, so it is cheap for "one edit?" tests. */
    limited: (max: number, a: string, b: string) => number;
  };
  export default damerauLevenshtein;
}
