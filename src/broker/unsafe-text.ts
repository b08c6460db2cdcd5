// Characters that change how a line reads without showing themselves: C0 and C1 controls, the
// line and paragraph separators U+2028/U+2029 (line breaks to many log viewers and editors), and
// the bidi embeddings, overrides, isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E/F,
// U+061C), which display text in another order than it is stored ("Trojan Source").
// Defined once: claims carrying them are refused (auth/github-claims.ts) before they can reach an
// annotation, an audit line or a policy match; every other string that reaches a log or audit
// line (a request's field names, error details) is escaped by escapeUnsafeText.
const UNSAFE_CLASS = String.raw`[\p{Cc}\p{Zl}\p{Zp}\p{Bidi_Control}]`;

export const UNSAFE_TEXT = new RegExp(UNSAFE_CLASS, 'u');
const UNSAFE_TEXT_ALL = new RegExp(UNSAFE_CLASS, 'gu');

/**
 * JSON text with every unsafe character written as a \uXXXX escape. In JSON.stringify's output
 * such characters can only occur inside strings, where the escape means the same character, so
 * the line still parses to the same value.
 */
export function escapeUnsafeText(json: string): string {
  return json.replace(UNSAFE_TEXT_ALL, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
