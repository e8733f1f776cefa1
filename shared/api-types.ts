// Shapes of the HTTP API's answers, shared with the client.
import type { ReleaseRules } from './release-manifest.ts';
import type { Role } from './roles.ts';

export interface ReleaseListItem {
  id: string;
  title: string;
  artist: string;
  durationSec: number;
  /** URL of the cover image, when the release has one with consent. */
  coverUrl: string | null;
  url: string;
}

export interface ReleaseView {
  id: string;
  title: string;
  artist: string;
  year: number | null;
  bpm: number | null;
  key: string | null;
  description: string | null;
  credits: string | null;
  durationSec: number;
  sampleRate: 48000;
  /** Stems are named, never served: the server mixes them. */
  stems: { id: string; title: string }[];
  excerpts: { id: string; title: string; startSec: number; endSec: number }[];
  artwork: { id: string; title: string; kind: 'cover' | 'graphic'; tags: string[]; width: number; height: number; url: string }[];
  rules: ReleaseRules;
}

/** Why a join link would not let someone in (POST /api/rooms/:roomId/invites/check). */
export const INVITE_PROBLEMS = ['room_ended', 'expired', 'wrong_room', 'not_a_link', 'revoked', 'used_up', 'locked'] as const;
export type InviteProblem = (typeof INVITE_PROBLEMS)[number];

/** The answer of POST /api/rooms/:roomId/invites/check. */
export type InviteCheck = { ok: true; role: Role; expiresAt: string } | { ok: false; reason: InviteProblem };
