// Cutting texts for display, and making strings safe to serialise. JS strings
// are UTF-16: cutting at a code unit can split an emoji into a lone surrogate,
// which is ill-formed in UTF-8 and JSON text (browsers and parsers reject it).

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * The text on one line (whitespace runs become one space), cut to at most
 * `max` code units at a grapheme boundary, with `…` when cut.
 */
export function flatExcerpt(text: string, max: number): string {
  // Only the head can show: flattening a whole long line for a few words would cost seconds.
  let head = text;
  if (text.length > 4 * max + 64) {
    const end = 4 * max + 64;
    head = text.slice(0, /[\uD800-\uDBFF]/.test(text[end - 1]!) ? end - 1 : end);
  }
  const flat = wellFormed(head.replace(/\s+/g, ' ').trim());
  if (head === text && flat.length <= max) return flat;
  if (flat.length < max) return `${flat}…`;
  let end = 0;
  // Segment only the head: a long text costs no more than a short one.
  for (const { index } of graphemes.segment(flat.slice(0, max + 16))) {
    if (index > max - 1) break;
    end = index;
  }
  // A grapheme longer than the whole excerpt (a long run of combining marks): cut at a code point.
  if (end === 0) end = /[\uD800-\uDBFF]/.test(flat[max - 2] ?? '') ? max - 2 : max - 1;
  return `${flat.slice(0, end)}…`;
}

/** The string with every lone surrogate replaced by U+FFFD. */
export function wellFormed(s: string): string {
  return s.replace(LONE_SURROGATE, '\uFFFD');
}

/** A deep copy of a JSON-like value whose strings (keys too) are all well-formed. */
export function wellFormedDeep<T>(value: T): T {
  if (typeof value === 'string') return wellFormed(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => wellFormedDeep(v)) as T;
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [wellFormed(k), wellFormedDeep(v)])) as T;
  }
  return value;
}
