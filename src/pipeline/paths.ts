import { basename, dirname, extname, join } from 'node:path';

/** `dir/stem.ext` -> `dir/stem<suffix>` (suffix includes its own extension). */
function sibling(path: string, suffix: string): string {
  const ext = extname(path);
  return join(dirname(path), `${basename(path, ext)}${suffix}`);
}

/** Default output paths: next to the input, named after it. */
export function outputPaths(o: {
  input: string;
  output?: string;
  scores?: string;
  report?: string;
  html?: string | null;
  removed?: string | null;
}) {
  const output = o.output ?? sibling(o.input, `.purified${extname(o.input)}`);
  return {
    output,
    // <stem>.removed.<ext>: beside the input when the output is, else beside the output, named after it
    removed:
      o.removed === null
        ? null
        : (o.removed ??
          (o.output === undefined
            ? sibling(o.input, `.removed${extname(o.input)}`)
            : sibling(output, `.removed${extname(output)}`))),
    scores: o.scores ?? sibling(output, '.scores.csv'),
    report: o.report ?? sibling(output, '.report.json'),
    html: o.html === null ? null : (o.html ?? sibling(output, '.report.html')),
  };
}

/** The outputs a run writes, each with what it is (for messages), in the order they are committed. */
export function outputRoles(paths: ReturnType<typeof outputPaths>): Array<{ path: string; what: string }> {
  return [
    { path: paths.output, what: 'the dataset output' },
    { path: paths.scores, what: 'the scores output' },
    ...(paths.removed === null ? [] : [{ path: paths.removed, what: 'the removed records' }]),
    { path: paths.report, what: 'the JSON report' },
    ...(paths.html === null ? [] : [{ path: paths.html, what: 'the HTML report' }]),
  ];
}
