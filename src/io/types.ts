/** Dataset file formats SOT reads and writes. */
export type FileFormat = 'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet';

/**
 * Record layouts, auto-detected from the fields of the first record unless set:
 * - `alpaca`: `instruction`, optional `input`, `output`
 * - `messages`: `messages: [{ role, content }]` (OpenAI chat)
 * - `sharegpt`: `conversations: [{ from, value }]`
 * - `prompt-response`: `prompt` and `response` (also `question`/`answer`, `goal`/`target` ...)
 * - `text`: one `text` field
 */
export type RecordFormat = 'alpaca' | 'messages' | 'sharegpt' | 'prompt-response' | 'text';

/** A record's text split in the two parts the embedding template combines. */
export interface SampleText {
  /** The user side: instruction (+ input), user turns, prompt. */
  prompt: string;
  /** The assistant side: output, assistant turns, response ('' when the record has none). */
  response: string;
  /**
   * Set only for the `text` layout: the whole text, embedded as is (templates
   * do not apply). `prompt` then holds the same text and `response` is ''.
   */
  text?: string;
}

/** One record as read, with its position for error messages. */
export interface SourceRecord {
  /** 0-based index among the records kept (after skipped invalid ones). */
  index: number;
  /** 1-based line (JSONL, CSV) or record number (JSON, Parquet) in the file. */
  line: number;
  /** The parsed record, unchanged. */
  value: Record<string, unknown>;
}

/** Explicit field names that override the auto-detected record layout. */
export interface FieldMapping {
  /** Field(s) that make up the prompt, joined by a blank line. */
  prompt?: string | string[];
  /** Field that holds the response. */
  response?: string;
  /** Field that holds the whole text (then no template is applied). */
  text?: string;
}
