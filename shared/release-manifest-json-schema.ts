import { z } from 'zod';
import { ReleaseManifestSchema } from './release-manifest.ts';

/** The JSON schema of release.json, as an artist's tools see it (defaults optional). */
export function releaseManifestJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(ReleaseManifestSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'urn:remixroom:release-manifest:1',
    title: 'Remixroom release manifest (release.json)',
  };
}
