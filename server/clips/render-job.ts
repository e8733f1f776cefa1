// What a render job is, as the store keeps it: the request a render row carries
// (a clip, a bought full-length version, a loop of the visuals), the result it ends
// with, the render's id and the files it may hold; and the Renderer contract, what
// a queue needs of whoever renders. Plain data and types that every layer of the
// clip code shares (the service writes requests, the queues hand them to a Renderer,
// the runner renders them and answers results); it imports none of them, so that
// the queues know the contract, not the runner.
import crypto from 'node:crypto';
import type { RoomState } from '../../shared/room-doc.ts';
import type { TimelineWindow } from '../rooms/timeline.ts';
import type { RenderRecord } from '../store/store.ts';
import type { Manifest, SignedManifest } from './manifest.ts';

export interface ClipRequest {
  kind: 'clip';
  releaseId: string;
  roomCreatedAtMs: number;
  seconds: number;
  /** What the member asked for (the window may be shorter when the room had less to give). */
  requestedSeconds: number;
  requestedBy: { userId: string; name: string };
  window: TimelineWindow;
  prompts: { text: string; by: string; name: string; atMs: number }[];
  /** A version for phones' short-video apps (VERTICAL_VIDEO), made from the clip `sourceClipId`. */
  shape?: 'vertical';
  sourceClipId?: string;
}

/** The longer version of a remix, bought: the room's mix at the clip's end, over the whole piece (or the release's set length). */
export interface FullRequest {
  kind: 'full';
  releaseId: string;
  roomCreatedAtMs: number;
  seconds: number;
  requestedBy: { userId: string; name: string };
  orderId: string;
  clipId: string;
  mix: RoomState['mix'];
  visualParams: unknown;
  contributors: Manifest['contributors'];
}

/** A short seamless loop of the room's visuals as they are now (MP4 and GIF). */
export interface LoopRequest {
  kind: 'loop';
  releaseId: string;
  roomCreatedAtMs: number;
  seconds: number;
  requestedBy: { userId: string; name: string };
  startMs: number;
  visualParams: unknown;
}

/** The request of a render that the queues run (a still is drawn at once and never queued). */
export type RenderRequest = ClipRequest | FullRequest | LoopRequest;

export interface ClipResult {
  /** What to download, by role: video, audio, gif, manifest → file name among the render's files (RENDER_FILES). */
  files?: Record<string, string>;
  manifest?: SignedManifest;
  error?: string;
  timings?: Record<string, number>;
  /** Which renderer process made it, and on which attempt (the Redis queue). */
  renderedBy?: string;
  attempts?: number;
}

export interface RenderHooks {
  /** Every step of progress (0..1). */
  onProgress(fraction: number): void;
  /** Progress worth telling the room: at most every 500 ms (clips and bought versions only). */
  onReport(fraction: number): void;
  /**
   * Called once the files are made, right before they are kept: throwing abandons the commit
   * (nothing is stored) and the render fails with that error. The Redis renderer checks here that
   * the job is still its own, so that a renderer that lost it never overwrites the winner's files.
   */
  beforeCommit?(): Promise<void>;
}

/** What the queues need of a renderer: RenderRunner (render-runner.ts) on this thread, ThreadedRenderRunner in worker threads. */
export interface Renderer {
  /** Renders `render` and keeps its files (RenderFiles); throws when it cannot (the queue records the failure). */
  render(render: RenderRecord, signal: AbortSignal, hooks: RenderHooks): Promise<ClipResult>;
}

/** 64 random bits, as the watermark carries them. */
export const RENDER_ID = /^[0-9a-f]{16}$/;

export function newRenderId(): string {
  return crypto.randomBytes(8).toString('hex');
}

/** Every file a render may hold, by name, with its content type: nothing else is written, stored or served. */
export const RENDER_FILES: ReadonlyMap<string, string> = new Map([
  ['clip.mp4', 'video/mp4'],
  ['clip.m4a', 'audio/mp4'],
  ['loop.mp4', 'video/mp4'],
  ['loop.gif', 'image/gif'],
  ['manifest.json', 'application/json'],
]);
