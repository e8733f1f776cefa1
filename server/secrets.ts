import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Config } from './config.ts';
import type { DataLayout } from './store/paths.ts';
import { z } from 'zod';

export interface Secrets {
  /** HMAC key for room tokens and signed links. */
  readonly tokenSecret: string;
}

const SecretsFile = z.object({ tokenSecret: z.string().min(32) });

/**
 * Secrets from the config, or, in embedded mode, generated once and kept under
 * DATA_DIR (mode 0600) so that tokens survive a restart. Several nodes must
 * share one secret, so scale-out mode requires it from the environment.
 */
export function loadSecrets(config: Config, layout: DataLayout): Secrets {
  if (config.tokenSecret) return Object.freeze({ tokenSecret: config.tokenSecret });
  if (config.redisUrl) {
    throw new Error('TOKEN_SECRET must be set when REDIS_URL is set, so that every node checks tokens with the same key');
  }
  const file = layout.secretsFile;
  if (fs.existsSync(file)) {
    const parsed = SecretsFile.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
    if (!parsed.success) throw new Error(`${file} is not a valid secrets file; delete it to generate new secrets`);
    return Object.freeze(parsed.data);
  }
  const secrets = { tokenSecret: crypto.randomBytes(32).toString('hex') };
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(secrets), { mode: 0o600 });
  fs.renameSync(tmp, file);
  return Object.freeze(secrets);
}
