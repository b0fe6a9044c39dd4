// JSON Lines: one object per line, streamed; blank lines are skipped.
import { InputError } from '../errors.js';
import { type ByteRange, excerpt, readLines } from './lines.js';
import { type RawItem, isRecord, typeName } from './raw.js';

/** V8's parse message without its "in JSON at position N" tail, and an excerpt around that position. */
function describeParseError(err: unknown, text: string): string {
  const message = err instanceof Error ? err.message : String(err);
  const pos = /at position (\d+)/.exec(message);
  const what = message
    .replace(/\s*in JSON at position \d+.*$/s, '')
    .replace(/^Unexpected end of JSON input$/, 'the line ends in the middle of a value (truncated?)');
  if (!pos) return `${what}: ${excerpt(text)}`;
  const at = Number(pos[1]);
  const from = Math.max(0, at - 30);
  return `${what} at column ${at + 1}, near ${from > 0 ? '…' : ''}${excerpt(text.slice(from, at + 30), 60)}`;
}

export async function* readJsonl(
  path: string,
  file: string,
  limit?: number,
  range?: ByteRange,
): AsyncGenerator<RawItem> {
  for await (const { line, text, badUtf8, unreadable } of readLines(path, file, limit, range)) {
    const where = { file, line };
    if (unreadable !== undefined) {
      yield { line, error: new InputError(where, unreadable) };
      continue;
    }
    if (badUtf8) {
      yield {
        line,
        error: new InputError(where, `line is not valid UTF-8 (bad bytes shown as U+FFFD): ${excerpt(text)}`),
      };
      continue;
    }
    const trimmed = text.trim();
    if (trimmed === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (err) {
      const hint = /^\[/.test(trimmed) && line === 1 ? ' (a JSON array? read it with format "json")' : '';
      yield {
        line,
        error: new InputError(where, `invalid JSON: ${describeParseError(err, trimmed)}${hint}`, { cause: err }),
      };
      continue;
    }
    if (!isRecord(value)) {
      yield {
        line,
        error: new InputError(where, `expected a JSON object, found ${typeName(value)}: ${excerpt(trimmed)}`),
      };
      continue;
    }
    yield { line, value, raw: text }; // the whole line, its spaces too: copied as it is
  }
}
