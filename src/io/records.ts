// Record layouts: which fields hold the prompt and the response, detected from
// the first record (or given), then enforced on every record so that a file
// mixing layouts fails loudly instead of embedding the wrong text.
import { InputError, OptionError, type InputLocation } from '../errors.js';
import { typeName } from './raw.js';
import type { FieldMapping, RecordFormat, SampleText } from './types.js';

export const RECORD_FORMATS: readonly RecordFormat[] = ['alpaca', 'messages', 'sharegpt', 'prompt-response', 'text'];

/** Where a record's text lives. */
export interface Layout {
  format: RecordFormat;
  /** Fields joined (non-empty ones, by a blank line) into the prompt. */
  prompt: string[];
  /** Prompt fields that may be missing or null (alpaca `input`, dolly `context`). */
  optional: string[];
  /** Field of the response; none for prompt-only sets (harmful instruction lists). */
  response?: string;
}

/**
 * Prompt-response pairs, most specific first; then prompt-only fields. HarmBench
 * uses `Behavior`, StrongREJECT `forbidden_prompt`, dolly `instruction`/`context`/`response`.
 */
const PAIRS: ReadonlyArray<[prompt: string[], response: string, optional?: string[]]> = [
  [['prompt'], 'response'],
  [['prompt'], 'completion'],
  [['question'], 'answer'],
  [['query'], 'response'],
  [['goal'], 'target'],
  [['instruction', 'context'], 'response', ['context']],
  [['input'], 'output'],
  [['Behavior'], 'target'],
];
const PROMPT_ONLY = ['prompt', 'question', 'query', 'goal', 'instruction', 'Behavior', 'forbidden_prompt', 'input'];

const ALPACA: Layout = { format: 'alpaca', prompt: ['instruction', 'input'], optional: ['input'], response: 'output' };
const ALPACA_FIELDS = ['instruction', 'input', 'output'] as const;
/** Fields holding a list of turns, by format: OpenAI-style exports and ShareGPT ones. */
const CHAT_LISTS = { messages: ['messages', 'conversation', 'chat'], sharegpt: ['conversations'] } as const;
/** The role and text keys of a turn, by format. */
const TURN_KEYS = { messages: ['role', 'content'], sharegpt: ['from', 'value'] } as const;

function describe(layout: Layout): string {
  if (layout.format !== 'prompt-response') return layout.format;
  return `prompt-response (${[layout.prompt.join('+'), layout.response].filter(Boolean).join('/')})`;
}

function has(v: Record<string, unknown>, field: string): boolean {
  return v[field] !== undefined && v[field] !== null;
}

/**
 * The record's spelling of a field: the name itself, else the one field that
 * matches it ignoring case (`Instruction`, `PROMPT`), set to a value.
 */
function spelled(v: Record<string, unknown>, name: string): string | undefined {
  if (has(v, name)) return name;
  const lower = name.toLowerCase();
  const matches = Object.keys(v).filter((k) => k.toLowerCase() === lower && has(v, k));
  return matches.length === 1 ? matches[0] : undefined;
}

/** The layout a record looks like, or undefined; `only` restricts the search to one format. */
export function detectLayout(v: Record<string, unknown>, only?: RecordFormat): Layout | undefined {
  const want = (f: RecordFormat) => only === undefined || only === f;
  for (const format of ['messages', 'sharegpt'] as const) {
    if (!want(format)) continue;
    for (const name of CHAT_LISTS[format]) {
      const list = spelled(v, name);
      if (list !== undefined && Array.isArray(v[list])) return { format, prompt: [list], optional: [] };
    }
  }
  if (want('alpaca')) {
    const [instruction, input, output] = ALPACA_FIELDS.map((f) => spelled(v, f));
    if (instruction !== undefined && output !== undefined) {
      const inputField = input ?? ALPACA.optional[0]!;
      return { format: 'alpaca', prompt: [instruction, inputField], optional: [inputField], response: output };
    }
  }
  if (want('prompt-response')) {
    for (const [prompt, response, optional = []] of PAIRS) {
      const p = prompt.map((f) => spelled(v, f) ?? f);
      const r = spelled(v, response);
      if (spelled(v, prompt[0]!) !== undefined && r !== undefined) {
        return {
          format: 'prompt-response',
          prompt: p,
          optional: optional.map((f) => p[prompt.indexOf(f)]!),
          response: r,
        };
      }
    }
    for (const field of PROMPT_ONLY) {
      const p = spelled(v, field);
      if (p !== undefined) return { format: 'prompt-response', prompt: [p], optional: [] };
    }
  }
  const text = want('text') ? spelled(v, 'text') : undefined;
  if (text !== undefined) return { format: 'text', prompt: [text], optional: [] };
  return undefined;
}

/**
 * The layout fixed by the options, or undefined when it must be detected.
 * `fields` implies `prompt-response` (or `text` when it names `text`).
 */
export function layoutFromOptions(recordFormat?: RecordFormat, fields?: FieldMapping): Layout | undefined {
  if (recordFormat !== undefined && !RECORD_FORMATS.includes(recordFormat)) {
    throw new OptionError(
      'ERR_OPTION',
      `recordFormat must be one of ${RECORD_FORMATS.join(', ')}, got ${JSON.stringify(recordFormat)}`,
    );
  }
  if (fields === undefined) return recordFormat === 'alpaca' ? ALPACA : undefined;
  const name = (f: unknown, what: string) => {
    if (typeof f !== 'string' || f === '')
      throw new OptionError('ERR_OPTION', `fields.${what} must be a non-empty field name`);
    return f;
  };
  if (fields.text !== undefined) {
    if (fields.prompt !== undefined || fields.response !== undefined) {
      throw new OptionError('ERR_OPTION', 'fields.text cannot be combined with fields.prompt or fields.response');
    }
    if (recordFormat !== undefined && recordFormat !== 'text')
      throw new OptionError('ERR_OPTION', `fields.text needs recordFormat 'text', not '${recordFormat}'`);
    return { format: 'text', prompt: [name(fields.text, 'text')], optional: [] };
  }
  if (fields.prompt === undefined)
    throw new OptionError('ERR_OPTION', 'fields must name a prompt (and optionally a response) field, or a text field');
  if (recordFormat !== undefined && recordFormat !== 'prompt-response') {
    throw new OptionError(
      'ERR_OPTION',
      `fields.prompt/response need recordFormat 'prompt-response', not '${recordFormat}'`,
    );
  }
  const prompt = (Array.isArray(fields.prompt) ? fields.prompt : [fields.prompt]).map((f) => name(f, 'prompt'));
  if (prompt.length === 0) throw new OptionError('ERR_OPTION', 'fields.prompt must name at least one field');
  const layout: Layout = { format: 'prompt-response', prompt, optional: [] };
  if (fields.response !== undefined) layout.response = name(fields.response, 'response');
  return layout;
}

/** Error for a record with no recognisable layout (or not the one asked for). */
export function unknownLayout(v: Record<string, unknown>, where: InputLocation, wanted?: RecordFormat): InputError {
  // a field that is there but null or a number is named with its type: that, not its name, is what failed
  const keys = Object.keys(v)
    .slice(0, 12)
    .map((k) => (typeof v[k] === 'string' ? JSON.stringify(k) : `${JSON.stringify(k)}: ${typeName(v[k])}`))
    .join(', ');
  const expected =
    wanted === undefined
      ? 'expected alpaca (instruction/input/output), messages or conversations (role/content or from/value turns), prompt/response (or question/answer, goal/target ...) or text, in any letter case'
      : `expected the ${wanted} format`;
  return new InputError(
    where,
    `cannot tell the record format from the fields {${keys}}: ${expected}; name the fields with the fields option (CLI: --prompt-field and --response-field, or --text-field)`,
  );
}

const USER = new Set(['user', 'human']);
const ASSISTANT = new Set(['assistant', 'gpt', 'chatgpt', 'model', 'bot']);
// System prompts describe the assistant, not the sample's content: ignored (as are tool results).
const IGNORED = new Set(['system', 'developer', 'tool', 'function', 'ipython', 'observation', 'function_call']);

function joinParts(parts: string[]): string {
  return parts.filter((p) => p.trim() !== '').join('\n\n');
}

/**
 * Extracts the prompt and response of a record with the given layout.
 * Throws `InputError` naming the field for a missing or mistyped field, and
 * says so when the record has another layout (mixed formats).
 */
export function extractText(v: Record<string, unknown>, layout: Layout, where: InputLocation): SampleText {
  const fail = (field: string, what: string) => {
    const other = v[field] === undefined ? detectLayout(v) : undefined;
    const mixed =
      other !== undefined && describe(other) !== describe(layout)
        ? ` (this record looks like ${describe(other)} but the file's layout is ${describe(layout)}: mixed record formats)`
        : '';
    return new InputError({ ...where, field }, `${what}${mixed}`);
  };
  const str = (field: string, optional = false): string => {
    const x = v[field];
    if (typeof x === 'string') return x;
    if (optional && (x === undefined || x === null)) return '';
    throw fail(
      field,
      x === undefined ? `missing field "${field}"` : `field "${field}" is ${typeName(x)}, expected a string`,
    );
  };

  let sample: SampleText;
  if (layout.format === 'messages' || layout.format === 'sharegpt') {
    sample = chatText(v, layout, layout.format, where, fail);
  } else if (layout.format === 'text') {
    const text = str(layout.prompt[0]!);
    sample = { prompt: text, response: '', text };
  } else {
    const prompt = joinParts(layout.prompt.map((f) => str(f, layout.optional.includes(f))));
    const response = layout.response === undefined ? '' : str(layout.response);
    sample = { prompt, response };
  }
  if (sample.prompt.trim() === '' && sample.response.trim() === '')
    throw new InputError(where, 'record has no text (empty prompt and response)');
  // Embedders need words: a record of punctuation or symbols only cannot be embedded.
  if (!HAS_WORD.test(sample.prompt) && !HAS_WORD.test(sample.response))
    throw new InputError(where, 'record has no words (no letter or digit in prompt or response)');
  return sample;
}

function chatText(
  v: Record<string, unknown>,
  layout: Layout,
  format: 'messages' | 'sharegpt',
  where: InputLocation,
  fail: (field: string, what: string) => InputError,
): SampleText {
  const list = layout.prompt[0] ?? CHAT_LISTS[format][0];
  const turns = v[list];
  if (turns === undefined) throw fail(list, `missing field "${list}"`);
  if (!Array.isArray(turns)) throw fail(list, `field "${list}" is ${typeName(turns)}, expected an array of turns`);
  const user: string[] = [];
  const assistant: string[] = [];
  turns.forEach((turn: unknown, i) => {
    const field = `${list}[${i}]`;
    if (typeof turn !== 'object' || turn === null || Array.isArray(turn))
      throw new InputError({ ...where, field }, `${field} is ${typeName(turn)}, expected an object`);
    const t = turn as Record<string, unknown>;
    // Exports mix the two spellings (OpenAI's role/content, ShareGPT's from/value) under either list name.
    const own = TURN_KEYS[format];
    const other = TURN_KEYS[format === 'messages' ? 'sharegpt' : 'messages'];
    const [roleKey, textKey] = t[own[0]] === undefined && t[other[0]] !== undefined ? other : own;
    const role = t[roleKey];
    if (typeof role !== 'string')
      throw new InputError(
        { ...where, field: `${field}.${roleKey}` },
        `${field}.${roleKey} is ${typeName(role)}, expected a string`,
      );
    const text = turnText(t[textKey], `${field}.${textKey}`, where);
    const r = role.toLowerCase();
    if (USER.has(r)) user.push(text);
    else if (ASSISTANT.has(r)) assistant.push(text);
    else if (!IGNORED.has(r))
      throw new InputError(
        { ...where, field: `${field}.${roleKey}` },
        `${field}.${roleKey} is the unknown role ${JSON.stringify(role)}`,
      );
  });
  if (user.length === 0)
    throw new InputError({ ...where, field: list }, `${list} has no ${format === 'messages' ? 'user' : 'human'} turn`);
  return { prompt: joinParts(user), response: joinParts(assistant) };
}

/** A turn's text: a string, null (tool-call turns), or OpenAI content parts (text parts joined). */
function turnText(content: unknown, field: string, where: InputLocation): string {
  if (typeof content === 'string') return content;
  if (content === null) return '';
  if (Array.isArray(content)) {
    return content
      .map((part: unknown) =>
        typeof part === 'object' && part !== null && (part as { type?: unknown }).type === 'text'
          ? (part as { text?: unknown }).text
          : undefined,
      )
      .filter((t): t is string => typeof t === 'string')
      .join('\n');
  }
  throw new InputError({ ...where, field }, `${field} is ${typeName(content)}, expected a string`);
}

/** A letter or a digit in any script: what the built-in embedder counts as a word. */
const HAS_WORD = /[\p{L}\p{N}]/u;

/** `{prompt}\n\n{response}`; when the response is empty the result is trimmed, so it is the prompt alone. */
export const DEFAULT_TEMPLATE = '{prompt}\n\n{response}';

/** Throws `OptionError` unless the template uses `{prompt}` or `{response}`. */
export function checkTemplate(template: string): void {
  if (typeof template !== 'string' || !/\{(prompt|response)\}/.test(template)) {
    throw new OptionError(
      'ERR_OPTION',
      `template must contain {prompt} and/or {response}, got ${JSON.stringify(template)}`,
    );
  }
}

/**
 * The text to embed: the template with `{prompt}` and `{response}` filled in
 * (in one pass, so braces inside the texts are left alone); trailing whitespace
 * is trimmed when the response is empty. `text` records are returned as is.
 */
export function renderText(sample: SampleText, template: string = DEFAULT_TEMPLATE): string {
  checkTemplate(template);
  if (sample.text !== undefined) return sample.text;
  const out = template.replace(/\{(prompt|response)\}/g, (_, k: 'prompt' | 'response') => sample[k]);
  return sample.response === '' ? out.trimEnd() : out;
}
