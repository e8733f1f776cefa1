import path from 'node:path';

export class PathEscapeError extends Error {
  override readonly name = 'PathEscapeError';
}

/**
 * Joins `parts` under `root` and refuses any result outside it. Every path that
 * came from outside (a manifest, a URL, an id) goes through here before it
 * reaches the disk.
 */
export function resolveInside(root: string, ...parts: string[]): string {
  const base = path.resolve(root);
  for (const part of parts) {
    if (part.includes('\0')) throw new PathEscapeError(`"${part.replace(/\0/g, '\\0')}" contains a NUL byte`);
  }
  const target = path.resolve(base, ...parts);
  if (target !== base && !target.startsWith(base + path.sep)) {
    throw new PathEscapeError(`"${parts.join('/')}" leads outside ${base}`);
  }
  return target;
}

/** Where things live under DATA_DIR. */
export class DataLayout {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get database(): string {
    return path.join(this.root, 'remixroom.sqlite');
  }
  get releasesDir(): string {
    return path.join(this.root, 'releases');
  }
  get rendersDir(): string {
    return path.join(this.root, 'renders');
  }
  /** Staging area on the same file system, so that a finished thing moves into place with one rename. */
  get tmpDir(): string {
    return path.join(this.root, 'tmp');
  }
  get secretsFile(): string {
    return path.join(this.root, 'secrets.json');
  }
  releaseDir(releaseId: string): string {
    return resolveInside(this.releasesDir, releaseId);
  }
  stemFile(releaseId: string, stemId: string): string {
    return resolveInside(this.releaseDir(releaseId), 'stems', `${stemId}.wav`);
  }
  artworkFile(releaseId: string, fileName: string): string {
    return resolveInside(this.releaseDir(releaseId), 'artwork', fileName);
  }
}
