// The release manifest (`release.json` in a release folder): what an artist or label
// hands over. Documented in the README; its JSON schema is generated from this file
// into shared/release-manifest.schema.json (`npm run schema`).
import { z } from 'zod';
import { MASTER_CONTROLS, STEM_CONTROLS, type ControlRange } from './controls.ts';

export const MANIFEST_FILE_NAME = 'release.json';
export const MANIFEST_SCHEMA_VERSION = 1;
export const STEM_EXTENSIONS = ['.wav', '.flac', '.mp3'] as const;
export const ARTWORK_EXTENSIONS = ['.png', '.jpg', '.jpeg'] as const;

const id = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be 1-63 characters of a-z, 0-9 and -, starting with a letter or digit');

const text = (max: number) => z.string().trim().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);

/** A path inside the release folder, written with forward slashes. Escapes are refused again at ingest, on the real file system. */
const relativeFile = (extensions: readonly string[]) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(255, 'must be at most 255 characters')
    .refine((p) => !p.startsWith('/') && !/^[a-zA-Z]:/.test(p) && !p.includes('\\'), 'must be a relative path with forward slashes')
    .refine((p) => !p.split('/').some((part) => part === '..' || part === ''), 'must stay inside the release folder (no "..")')
    .refine(
      (p) => extensions.some((ext) => p.toLowerCase().endsWith(ext)),
      `must end in ${extensions.join(', ')}`,
    );

const rangeOf = (r: ControlRange) =>
  z
    .object({ min: z.number().finite(), max: z.number().finite() })
    .strict()
    .refine((v) => v.min <= v.max, 'min must not be above max')
    .refine((v) => v.min >= r.min && v.max <= r.max, `must lie within ${r.min}..${r.max} ${r.unit}`.trim());

const rangesOf = <T extends Record<string, ControlRange>>(controls: T) =>
  z
    .object(Object.fromEntries(Object.entries(controls).map(([k, r]) => [k, rangeOf(r).optional()])) as {
      [K in keyof T]: z.ZodOptional<ReturnType<typeof rangeOf>>;
    })
    .strict();

export const PROMPT_POLICIES = ['open', 'queued', 'closed'] as const;
export type PromptPolicy = (typeof PROMPT_POLICIES)[number];

export const ReleaseRulesSchema = z
  .object({
    /** Stems members may touch; omitted means all of them. */
    editableStems: z.array(id).optional(),
    stemRanges: rangesOf(STEM_CONTROLS).default({}),
    masterRanges: rangesOf(MASTER_CONTROLS).default({}),
    prompts: z
      .object({
        policy: z.enum(PROMPT_POLICIES).default('open'),
        maxLength: z.number().int().min(1).max(500).default(200),
        blockedWords: z.array(text(64)).max(1000).default([]),
        blockedNames: z.array(text(64)).max(1000).default([]),
        /** Refuse prompts naming other artists (from the server's default list). */
        blockOtherArtists: z.boolean().default(true),
      })
      .strict()
      .default({ policy: 'open', maxLength: 200, blockedWords: [], blockedNames: [], blockOtherArtists: true }),
    clips: z
      .object({
        /** Longest free clip, in seconds. */
        freeSeconds: z.number().int().min(5).max(30).default(30),
        downloads: z.boolean().default(true),
      })
      .strict()
      .default({ freeSeconds: 30, downloads: true }),
    purchase: z
      .object({
        enabled: z.boolean().default(true),
        priceCents: z.number().int().min(0).max(100_000).default(299),
        currency: z.string().regex(/^[A-Z]{3}$/, 'must be a three-letter ISO 4217 code like USD').default('USD'),
        /** Length of the purchased version; omitted means the whole piece. */
        lengthSeconds: z.number().positive().max(3600).optional(),
      })
      .strict()
      .default({ enabled: true, priceCents: 299, currency: 'USD' }),
  })
  .strict();

export const ReleaseManifestSchema = z
  .object({
    $schema: z.string().optional(),
    schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION, { message: `must be ${MANIFEST_SCHEMA_VERSION}` }),
    id,
    title: text(200),
    artist: text(200),
    year: z.number().int().min(1900).max(2100).optional(),
    bpm: z.number().min(30).max(300).optional(),
    key: text(32).optional(),
    description: z.string().max(2000).optional(),
    credits: z.string().max(2000).optional(),
    stems: z
      .array(
        z
          .object({
            id,
            title: text(100),
            file: relativeFile(STEM_EXTENSIONS),
          })
          .strict(),
      )
      .min(1, 'must list at least one stem')
      .max(16, 'must list at most 16 stems'),
    excerpts: z
      .array(
        z
          .object({
            id,
            title: text(100),
            startSec: z.number().min(0),
            endSec: z.number().positive(),
          })
          .strict()
          .refine((e) => e.endSec - e.startSec >= 5, 'must be at least 5 seconds long (endSec - startSec)'),
      )
      .min(1, 'must mark at least one excerpt')
      .max(32),
    artwork: z
      .array(
        z
          .object({
            id,
            title: text(100),
            file: relativeFile(ARTWORK_EXTENSIONS),
            kind: z.enum(['cover', 'graphic']).default('graphic'),
            tags: z.array(text(40)).max(50).default([]),
            /** The artist agrees that this asset may be transformed by fans' prompts. Without it the asset is not used. */
            consent: z.boolean(),
            /** Who gave the consent (a person or the label), for the training record of the visual model. */
            consentBy: text(200).optional(),
            /** When the consent was given (an ISO 8601 date or date-time); default: when the release was ingested. */
            consentAt: z
              .string()
              .regex(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/, 'must be an ISO 8601 date or date-time like 2026-03-01 or 2026-03-01T12:00:00Z')
              .refine((v) => !Number.isNaN(Date.parse(v)), 'is not a real date')
              .optional(),
          })
          .strict(),
      )
      .min(1, 'must list at least one artwork image')
      .max(64),
    rules: ReleaseRulesSchema.default(() => ReleaseRulesSchema.parse({})),
  })
  .strict()
  .superRefine((m, ctx) => {
    unique(m.stems.map((s) => s.id), ['stems'], 'stem id', ctx);
    unique(m.stems.map((s) => s.file), ['stems'], 'stem file', ctx);
    unique(m.excerpts.map((e) => e.id), ['excerpts'], 'excerpt id', ctx);
    unique(m.artwork.map((a) => a.id), ['artwork'], 'artwork id', ctx);
    const stemIds = new Set(m.stems.map((s) => s.id));
    m.rules.editableStems?.forEach((s, i) => {
      if (!stemIds.has(s)) ctx.addIssue({ code: 'custom', path: ['rules', 'editableStems', i], message: `names no stem of this release: "${s}"` });
    });
  });

function unique(values: string[], path: (string | number)[], what: string, ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) ctx.addIssue({ code: 'custom', path: [...path, i], message: `repeats the ${what} "${v}"` });
    seen.add(v);
  });
}

export type ReleaseManifest = z.infer<typeof ReleaseManifestSchema>;
export type ReleaseRules = z.infer<typeof ReleaseRulesSchema>;

/** "stems[2].file: must end in .wav, .flac, .mp3" — for people, not programs. */
export function describeManifestIssues(error: z.ZodError, max = 5): string[] {
  return error.issues.slice(0, max).map((issue) => `${formatPath(issue.path)}: ${issue.message}`);
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(manifest)';
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}
