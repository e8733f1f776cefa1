// Provenance manifests: what a rendered file is made of and who made it,
// signed with Ed25519. The signing key is derived from the server's token
// secret (HKDF), so every node of a deployment signs with the same key and a
// restart keeps it; its public half is published (GET /api/manifest-key).
//
// The signature covers the canonical JSON of the manifest (keys sorted, no
// spaces), so it survives being re-serialized by anyone.
import crypto from 'node:crypto';

export const MANIFEST_VERSION = 1;
export const SOFTWARE = 'remixroom/0.1.0';

export interface ManifestContributor {
  userId: string;
  name: string;
  /** How many changes to the mix and arrangement they made inside the window. */
  changes: number;
  prompts: { text: string; atMs: number }[];
}

export interface ManifestVisualModel {
  /** SHA-256 of the model's weights. */
  id: string;
  method: string;
  /** The training record: which artworks (with their hashes and consent), the code, the seed, the steps. */
  record: string;
}

/** How a manifest names the models that drew a file (none: the field is left out). */
export function manifestVisualModels(releaseId: string, modelIds: readonly string[], method: string): { visualModels?: ManifestVisualModel[] } {
  if (modelIds.length === 0) return {};
  return { visualModels: [...modelIds].sort().map((id) => ({ id, method, record: `/api/releases/${encodeURIComponent(releaseId)}/visual-model/${id}` })) };
}

export interface ManifestFile {
  name: string;
  sha256: string;
  bytes: number;
}

export interface Manifest {
  version: number;
  renderId: string;
  kind: 'clip' | 'full' | 'still' | 'loop';
  release: { id: string; title: string; artist: string };
  assets: { stems: string[]; artwork: string[] };
  room: { id: string };
  window: { fromMs: number; toMs: number; seconds: number };
  requestedBy: { userId: string; name: string };
  contributors: ManifestContributor[];
  /**
   * The visual models that generated imagery drawn in the file (absent: none did), each
   * named by the SHA-256 of its weights, with where its training record is read.
   */
  visualModels?: ManifestVisualModel[];
  software: string;
  createdAt: string;
  /** The files as rendered (absent from the copy embedded inside a file, which cannot hash itself). */
  files?: ManifestFile[];
}

export interface SignedManifest {
  manifest: Manifest;
  algorithm: 'Ed25519';
  /** Base64 of the raw 32-byte public key. */
  publicKey: string;
  /** Base64 of the signature over canonicalJson(manifest). */
  signature: string;
}

// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export class ManifestSigner {
  readonly #privateKey: crypto.KeyObject;
  readonly publicKeyRaw: Buffer;

  constructor(secret: string) {
    if (secret.length < 16) throw new RangeError('the manifest key needs a secret of at least 16 characters');
    const seed = Buffer.from(crypto.hkdfSync('sha256', secret, 'remixroom', 'manifest-ed25519-v1', 32));
    this.#privateKey = crypto.createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    const spki = crypto.createPublicKey(this.#privateKey).export({ format: 'der', type: 'spki' });
    this.publicKeyRaw = spki.subarray(spki.length - 32);
  }

  get publicKey(): string {
    return this.publicKeyRaw.toString('base64');
  }

  sign(manifest: Manifest): SignedManifest {
    const signature = crypto.sign(null, Buffer.from(canonicalJson(manifest)), this.#privateKey);
    return { manifest, algorithm: 'Ed25519', publicKey: this.publicKey, signature: signature.toString('base64') };
  }
}

/** Whether `signed` carries a good signature by `publicKey` (base64, raw 32 bytes; default: the one it names). */
export function verifyManifest(signed: unknown, publicKey?: string): boolean {
  if (typeof signed !== 'object' || signed === null) return false;
  const s = signed as Partial<SignedManifest>;
  if (s.algorithm !== 'Ed25519' || typeof s.signature !== 'string' || typeof s.manifest !== 'object' || s.manifest === null) return false;
  const keyB64 = publicKey ?? s.publicKey;
  if (typeof keyB64 !== 'string') return false;
  try {
    const raw = Buffer.from(keyB64, 'base64');
    if (raw.length !== 32) return false;
    const key = crypto.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
    return crypto.verify(null, Buffer.from(canonicalJson(s.manifest)), key, Buffer.from(s.signature, 'base64'));
  } catch {
    return false;
  }
}

/** JSON with object keys sorted at every level and no whitespace. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = sortKeys(v);
  }
  return out;
}
