// A JSON file holding an array of objects, or an object with exactly one
// property that is such an array (`{ "data": [...] }`, `{ "completions": [...] }`).
// The whole file is parsed at once: JSON cannot be streamed without a
// streaming parser, and JSON datasets are small in practice (use JSONL for big ones).
import { readFile, stat } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { DEFAULT_MAX_LINE_BYTES, ioError, readLines, tooLongMessage } from './lines.js';
import { recordSpans } from './json-spans.js';
import { type FileShape, type RawItem, isRecord, tooDeep, tooDeepMessage, typeName } from './raw.js';

async function firstBadUtf8Line(path: string, file: string, limit: number): Promise<number | undefined> {
  for await (const l of readLines(path, file, limit)) if (l.badUtf8) return l.line;
  return undefined;
}

function lineAt(text: string, position: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < position; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** Parses the file and finds its records; errors are about the whole file. */
export async function parseJsonFile(
  path: string,
  file: string,
  limit = DEFAULT_MAX_LINE_BYTES,
): Promise<{ records: unknown[]; container?: { key: string; rest: Record<string, unknown> }; text: string }> {
  let bytes: Buffer;
  try {
    // The whole file becomes one string: it must fit the limit a line has (checked before reading it).
    if ((await stat(path)).size > limit)
      throw new InputError(
        { file },
        `${tooLongMessage('the JSON file', limit)}; JSON Lines (.jsonl) has the limit per line`,
      );
    bytes = await readFile(path);
  } catch (err) {
    throw ioError(file, err);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const line = await firstBadUtf8Line(path, file, limit);
    throw new InputError({ file, line }, 'line is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const pos = /position (\d+)/.exec(message);
    const line = pos ? lineAt(text, Number(pos[1])) : undefined;
    const hint = /^\s*\{[^\n]*\}\s*\n\s*\{/.test(text.slice(0, 1 << 16))
      ? ' (it looks like JSON Lines: name it .jsonl or use format "jsonl")'
      : '';
    throw new InputError({ file, line }, `invalid JSON: ${message}${hint}`, { cause: err });
  }
  if (Array.isArray(parsed)) return { records: parsed, text };
  if (isRecord(parsed)) {
    const arrays = Object.keys(parsed).filter((k) => Array.isArray(parsed[k]));
    if (arrays.length === 1) {
      const key = arrays[0]!;
      const { [key]: records, ...rest } = parsed;
      const deep = tooDeep(rest);
      if (deep !== undefined) throw new InputError({ file, field: deep }, tooDeepMessage(deep));
      return { records: records as unknown[], container: { key, rest }, text };
    }
    const found = arrays.length === 0 ? 'none' : arrays.map((k) => `"${k}"`).join(', ');
    throw new InputError(
      { file },
      `expected an array of records, or an object with one array property (found ${found})`,
    );
  }
  throw new InputError({ file }, `expected an array of records, found ${typeName(parsed)}`);
}

export async function* readJson(path: string, file: string, shape: FileShape, limit?: number): AsyncGenerator<RawItem> {
  const { records, container, text } = await parseJsonFile(path, file, limit);
  // each record's text, which the writer copies: re-serialising the parsed value would change numbers
  const spans = recordSpans(text, container?.key);
  const items = spans?.items.length === records.length ? spans.items : undefined;
  if (container) {
    const rest = JSON.stringify(container.rest);
    shape.container = spans
      ? { head: text.slice(0, spans.open), tail: text.slice(spans.close + 1) }
      : { head: `${rest.slice(0, -1)}${rest === '{}' ? '' : ','}${JSON.stringify(container.key)}:`, tail: '}\n' };
  }
  for (let i = 0; i < records.length; i++) {
    const value = records[i];
    const line = i + 1;
    const deep = isRecord(value) ? tooDeep(value) : undefined;
    if (deep !== undefined) yield { line, error: new InputError({ file, line, field: deep }, tooDeepMessage(deep)) };
    else if (isRecord(value)) yield { line, value, raw: items && text.slice(items[i]![0], items[i]![1]) };
    else
      yield { line, error: new InputError({ file, line }, `record ${line} is ${typeName(value)}, expected an object`) };
  }
}
