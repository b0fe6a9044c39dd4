// Bearer tokens, each naming a tenant. Only their SHA-256 hashes are held
// (a leaked config file or heap dump does not give the tokens away), and a
// presented token is compared against every hash in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { OptionError } from '../errors.js';

/** Tenant names become folder names under the data root: no dots, no slashes. */
export const TENANT_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export interface TokenEntry {
  tenant: string;
  /** SHA-256 of the token, hex. */
  sha256: string;
}

export const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

export class Tokens {
  private readonly entries: Array<{ tenant: string; hash: Buffer }>;

  constructor(entries: TokenEntry[]) {
    this.entries = entries.map((e, i) => {
      if (typeof e?.tenant !== 'string' || !TENANT_RE.test(e.tenant)) {
        throw new OptionError(
          'ERR_OPTION',
          `tokens[${i}].tenant must be 1-64 letters, digits, '_' or '-', got ${JSON.stringify(e?.tenant)}`,
        );
      }
      if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(e.sha256))
        throw new OptionError('ERR_OPTION', `tokens[${i}].sha256 must be 64 hex digits`);
      return { tenant: e.tenant, hash: Buffer.from(e.sha256, 'hex') };
    });
  }

  get size(): number {
    return this.entries.length;
  }

  /** The tenant of an `Authorization: Bearer <token>` header, or undefined. */
  tenantOf(header: string | undefined): string | undefined {
    const m = /^Bearer +(\S+)\s*$/i.exec(header ?? '');
    if (!m) return undefined;
    const hash = createHash('sha256').update(m[1]!, 'utf8').digest();
    let found: string | undefined;
    for (const e of this.entries) if (timingSafeEqual(hash, e.hash) && found === undefined) found = e.tenant; // no early exit
    return found;
  }
}

/**
 * Tokens from a JSON file (`{"tokens": [{"tenant": "alice", "sha256": "<hex>"}]}`)
 * and/or a `tenant:token,tenant:token` list (env `SOT_SERVE_TOKENS`), hashed on load.
 */
export function loadTokens(o: { file?: string; env?: string }): Tokens {
  const entries: TokenEntry[] = [];
  if (o.file) {
    let doc: { tokens?: TokenEntry[] };
    try {
      doc = JSON.parse(readFileSync(o.file, 'utf8')) as { tokens?: TokenEntry[] };
    } catch (err) {
      throw new OptionError('ERR_OPTION', `cannot read the tokens file ${o.file}: ${(err as Error).message}`);
    }
    if (!Array.isArray(doc?.tokens))
      throw new OptionError('ERR_OPTION', `${o.file}: expected {"tokens": [{"tenant": ..., "sha256": ...}]}`);
    entries.push(...doc.tokens);
  }
  for (const pair of (o.env ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const i = pair.indexOf(':');
    if (i <= 0 || i === pair.length - 1)
      throw new OptionError('ERR_OPTION', 'SOT_SERVE_TOKENS must be tenant:token pairs separated by commas');
    entries.push({ tenant: pair.slice(0, i), sha256: sha256(pair.slice(i + 1)) });
  }
  if (entries.length === 0)
    throw new OptionError('ERR_OPTION', 'no tokens: give --tokens <file> or set SOT_SERVE_TOKENS');
  return new Tokens(entries);
}
