import { AbortError } from '../errors.js';
import type { Embedder, EmbedCallOptions } from '../embed/types.js';
import { checkTemplate, openDataset, renderText, type Dataset, type OpenDatasetOptions } from '../io/index.js';
import type { SampleText } from '../io/types.js';
import { weightFieldOf, weightFieldTaken } from '../io/write.js';
import type { DatasetSource, PurifyOptions } from './options.js';

/** The embedder's own rendering of records, when it has one (else the template applies). */
export function embedderRender(embedder: Embedder | undefined): ((sample: SampleText) => string) | undefined {
  return embedder?.renderSample ? (s) => embedder.renderSample!(s) : undefined;
}

/** Texts per batch through the embedder (and the cache). */
export const BATCH = 2048;

export interface StreamOptions extends EmbedCallOptions {
  onProgress?: (done: number) => void;
}

export interface CountOptions extends StreamOptions {
  /** Given to the embedder's fit (`EmbedderFitOptions`). */
  memoryBudget?: number;
}

/**
 * The dataset as the pipeline sees it: a re-iterable stream of rendered
 * texts. Never held whole in memory; read once to count (and fit the
 * embedder), once to embed, once to write.
 */
export class PipelineInput {
  /** Invalid records skipped (with `skipInvalid`) in the counting pass, with the first reasons. */
  skipped = { count: 0, reasons: [] as string[] };

  private constructor(
    readonly dataset: Dataset,
    private readonly template: string | undefined,
    /** The embedder's own rendering of a record, when it has one (the report's excerpts keep the template's). */
    private readonly render: ((sample: SampleText) => string) | undefined,
    /** The field the purified records get their weight in: no record may have it already. */
    private readonly weightField: string | null,
  ) {}

  /** `weightField`: purify's (undefined for its default); leave it out (`sot embed`) when nothing is written back. */
  static async open(
    o: DatasetSource & Pick<PurifyOptions, 'template' | 'embedder'> & Pick<OpenDatasetOptions, 'range' | 'layout'>,
    written?: { weightField: string | null | undefined },
  ): Promise<PipelineInput> {
    const weightField = written === undefined ? null : weightFieldOf(written.weightField);
    const dataset = await openDataset(o.input, {
      format: o.format,
      recordFormat: o.recordFormat,
      fields: o.fields,
      skipInvalid: o.skipInvalid,
      maxLineBytes: o.maxLineBytes,
      range: o.range,
      layout: o.layout,
    });
    if (o.template !== undefined) checkTemplate(o.template); // before any work
    return new PipelineInput(dataset, o.template, embedderRender(o.embedder), weightField);
  }

  /** Batches of rendered texts with their records' file lines, in record order. */
  async *batches(options: StreamOptions = {}): AsyncGenerator<{ texts: string[]; lines: number[] }> {
    let texts: string[] = [];
    let lines: number[] = [];
    let done = 0;
    for await (const { record, text } of this.dataset) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      // In the counting pass already: the weight must not replace a value of the user's.
      if (this.weightField !== null && Object.hasOwn(record.value, this.weightField))
        throw weightFieldTaken(this.dataset.path, record.line, this.weightField);
      texts.push(this.rendered(text));
      lines.push(record.line);
      if (texts.length === BATCH) {
        done += texts.length;
        yield { texts, lines };
        options.onProgress?.(done);
        texts = [];
        lines = [];
      }
    }
    if (texts.length) {
      done += texts.length;
      yield { texts, lines };
      options.onProgress?.(done);
    }
  }

  /** A record's text as the embedder gets it (its own rendering, else the template's). */
  rendered(text: SampleText): string {
    return this.render ? this.render(text) : renderText(text, this.template);
  }

  /** Counts the records, fitting the embedder on their texts on the way when it wants that. */
  async count(embedder: Embedder, options: CountOptions = {}): Promise<number> {
    let n = 0;
    const counted = async function* (this: PipelineInput) {
      for await (const b of this.batches(options)) {
        n += b.texts.length;
        yield b.texts;
      }
    }.call(this);
    if (embedder.fit) {
      await embedder.fit(counted, { signal: options.signal, memoryBudget: options.memoryBudget });
    } else {
      for await (const _ of counted);
    }
    // The dataset resets its skip report on every pass; keep this full pass's.
    this.skipped = { count: this.dataset.skipped.count, reasons: this.dataset.skipped.first.map((e) => e.message) };
    return n;
  }
}
