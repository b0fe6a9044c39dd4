// Where the records of a JSON file sit in its text, so that the writer
// copies each kept record as it was written: JSON.parse turns 64-bit ids
// into the nearest double, 1e400 into Infinity (written back as null) and
// -0 into 0, and drops all but the last of a duplicated key.
// The text has parsed as JSON already: only valid JSON reaches the scanner.

/** The records' array in the text: `[open, close]` are its brackets, `items` each element's [start, end). */
export interface ArraySpans {
  open: number;
  close: number;
  items: Array<[number, number]>;
}

const WS = new Set([' ', '\t', '\n', '\r']);

function skipWs(text: string, i: number): number {
  while (i < text.length && WS.has(text[i]!)) i++;
  return i;
}

/** The index just past the string token that opens at `i`. */
function endOfString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j + 1;
  }
  return text.length;
}

/** The index just past the value that starts at `i`. */
function endOfValue(text: string, i: number): number {
  if (text[i] === '"') return endOfString(text, i);
  if (text[i] !== '[' && text[i] !== '{') {
    let j = i;
    while (j < text.length && !WS.has(text[j]!) && text[j] !== ',' && text[j] !== ']' && text[j] !== '}') j++;
    return j;
  }
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    const c = text[j];
    if (c === '"') j = endOfString(text, j) - 1;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') {
      depth--;
      if (depth === 0) return j + 1;
    }
  }
  return text.length;
}

function elements(text: string, open: number): ArraySpans {
  const items: Array<[number, number]> = [];
  let i = skipWs(text, open + 1);
  while (text[i] !== ']') {
    const end = endOfValue(text, i);
    items.push([i, end]);
    i = skipWs(text, end);
    if (text[i] === ',') i = skipWs(text, i + 1);
  }
  return { open, close: i, items };
}

/**
 * The spans of the records: the top-level array's elements, or those of the
 * array under `key` of the top-level object (its last occurrence, as
 * JSON.parse keeps).
 */
export function recordSpans(text: string, key?: string): ArraySpans | undefined {
  let i = skipWs(text, 0);
  if (key === undefined) return text[i] === '[' ? elements(text, i) : undefined;
  if (text[i] !== '{') return undefined;
  let found: number | undefined;
  i = skipWs(text, i + 1);
  while (i < text.length && text[i] !== '}') {
    const keyEnd = endOfString(text, i);
    const name = JSON.parse(text.slice(i, keyEnd)) as string;
    const value = skipWs(text, skipWs(text, keyEnd) + 1); // past the colon
    if (name === key && text[value] === '[') found = value;
    i = skipWs(text, endOfValue(text, value));
    if (text[i] === ',') i = skipWs(text, i + 1);
  }
  return found === undefined ? undefined : elements(text, found);
}
