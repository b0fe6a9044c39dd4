// The bench scripts' command line, read one way everywhere: `--name value`
// options, bare `--name` flags, and the positional arguments in `args`.
export const args = process.argv.slice(2);

/** The value after `--name`, or `fallback` when the option is absent. */
export function opt(name, fallback) {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`);
  return value;
}

/** Whether the bare flag `--name` was given. */
export const flag = (name) => args.includes(`--${name}`);
