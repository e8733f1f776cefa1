// The room: what a member sees and touches once in. Connection state, the live
// audio, the visuals, the transport, the mixer, people, chat and reactions,
// prompts, and for the host the share link, the approval queue and the rules.
// Everything that is room state is read from the room document and written to
// it; the socket.io channel carries what is not (presence, chat, prompts).
import type { ReleaseView } from '../../shared/api-types.ts';
import { qrCanvas } from './qr.ts';
import { LimitsEditor } from './limits.ts';
import type { Refusal } from '../../shared/refusals.ts';
import { readRoomState, type RoomState } from '../../shared/room-doc.ts';
import type { Role } from '../../shared/roles.ts';
import { canRemix } from '../../shared/roles.ts';
import { REACTIONS, type AppliedPrompt, type ChatMessage, type PendingPrompt, type Presence, type Reaction } from '../../shared/socket-events.ts';
import { playRegion, transportPosition } from '../../shared/transport.ts';
import * as Y from 'yjs';
import { api, ApiError } from './api.ts';
import { ClipsPanel, VisualSaves, type ProgressSource } from './clips.ts';
import { formatDuration, h, uid } from './dom.ts';
import { LiveAudio, type AudioStats } from './live-audio.ts';
import { Mixer } from './mixer.ts';
import { EditHistory } from './history.ts';
import { TakesPanel } from './takes.ts';
import { RoomConnection, type ConnectionState } from './room-connection.ts';
import { forgetMembership, refreshMembership, type Membership } from './session.ts';
import { MyThingsPanel } from './my-things.ts';
import { hostLinkBox } from './host-link.ts';
import { VisualsView } from './visuals.ts';
import { AudienceBar, BroadcastPanel } from './broadcast-panel.ts';
import { ModelPanel } from './model-panel.ts';
import { apiErrorWords, refusalWords } from './words.ts';

const ROLE_WORDS: Record<Role, string> = { host: 'host', remixer: 'remixer', listener: 'listener' };
const CHAT_KEEP = 200;

/** What the browser tests (and a curious person in the console) can read. */
export interface RoomHooks {
  role(): Role;
  state(): RoomState | null;
  connection(): ConnectionState;
  audio(): { state: string; error: string | null };
  audioStats(): Promise<AudioStats>;
  /** The received mix's level now (0..1), from the page's analyser: what the member hears. */
  audioLevel(): number;
  /** How the sound comes: the stage's WebRTC, the audience's HLS, or null while off. */
  audioVia(): 'webrtc' | 'hls' | null;
  /** How far behind the stage this member hears (ms; 0 on WebRTC). */
  delayMs(): number;
  visuals(): { paramsKey: string; framesDrawn: number; status: string; generatedLoaded: number };
}

declare global {
  interface Window {
    remixroom?: RoomHooks;
  }
}

export function showRoom(main: HTMLElement, me: Membership, app: { navigate(path: string): void }): () => void {
  const loading = h('p', { class: 'loading' }, 'Opening the room…');
  main.append(loading);
  let view: RoomView | null = null;
  let left = false;
  api
    .room(me.roomId)
    .then(async (room) => {
      if (room.info.ended) {
        if (left) return;
        loading.replaceWith(...endedPage(me, 'This room has ended.', app));
        return;
      }
      const release = await api.release(room.info.releaseId);
      if (left) return;
      loading.remove();
      view = new RoomView(main, me, release, app);
      if (room.serverDateMs !== null) {
        // The Date header is to the second: only a clearly different clock is corrected.
        const offset = room.serverDateMs + 500 - (room.sentMs + room.receivedMs) / 2;
        if (Math.abs(offset) > 2000) view.conn.serverOffsetMs = offset;
      }
    })
    .catch((err: unknown) => {
      if (left) return;
      const gone = err instanceof ApiError && err.status === 404;
      const msg = gone ? 'This room does not exist any more.' : apiErrorWords(err);
      loading.replaceWith(
        h('section', { class: 'panel narrow' }, h('h1', {}, 'The room could not be opened'), h('p', { role: 'alert' }, msg), h('a', { href: '/', class: 'button' }, 'Go to the start page')),
      );
      if (gone) forgetMembership(me.roomId);
    });
  return () => {
    left = true;
    view?.close();
  };
}

class RoomView {
  readonly conn: RoomConnection;
  readonly #me: Membership;
  readonly #release: ReleaseView;
  readonly #main: HTMLElement;
  readonly #app: { navigate(path: string): void };
  readonly #mixer: Mixer;
  readonly #undo: EditHistory;
  readonly #takes: TakesPanel;
  readonly #audio: LiveAudio;
  readonly #visuals: VisualsView;
  readonly #clips: ClipsPanel;
  readonly #visualSaves: VisualSaves;
  readonly #myThings: MyThingsPanel;
  readonly #broadcast: BroadcastPanel;
  #modelPanel: ModelPanel | null = null;
  readonly #audienceBar: AudienceBar;
  /** Whether this member was in a broadcast's audience at the last render. */
  #inAudience = false;
  readonly #offs: (() => void)[] = [];
  #state: RoomState | null = null;
  #renderQueued = false;
  #frame = 0;
  #closed = false;
  #noticeTimer: ReturnType<typeof setTimeout> | null = null;
  #presence: Presence = { count: 0, members: [] };
  #queue: PendingPrompt[] = [];

  // Elements updated as things change.
  readonly #status = h('div', { class: 'conn', role: 'status', 'aria-live': 'polite' });
  readonly #notice = h('div', { class: 'notice', role: 'alert', hidden: true });
  readonly #roleBadge = h('span', { class: 'role-badge' });
  readonly #playButton = h('button', { type: 'button', class: 'play', 'aria-pressed': 'false' }, 'Play');
  readonly #position = h('span', { class: 'position', 'aria-live': 'off' }, '0:00');
  readonly #seek = h('input', { type: 'range', id: 'seek', min: 0, max: 1, step: 0.1, value: 0, 'aria-describedby': 'transport-lock' });
  readonly #excerpt = h('select', { id: 'excerpt', 'aria-describedby': 'transport-lock' });
  readonly #transportLock = h('p', { class: 'lock-reason', id: 'transport-lock', hidden: true });
  readonly #loopText = h('span', { class: 'loop-text', 'aria-live': 'polite' }, 'No loop: the whole excerpt plays.');
  readonly #loopStart = h('button', { type: 'button', 'aria-describedby': 'transport-lock' }, 'Loop from here');
  readonly #loopEnd = h('button', { type: 'button', 'aria-describedby': 'transport-lock' }, 'Loop to here');
  readonly #loopClear = h('button', { type: 'button', 'aria-describedby': 'transport-lock' }, 'Clear loop');
  readonly #audioButton = h('button', { type: 'button', class: 'primary start-audio' }, '▶ Start audio');
  readonly #audioStatus = h('span', { class: 'audio-status', role: 'status' }, 'Audio is off. Press “Start audio” to hear the room’s mix.');
  readonly #audioElement = h('audio', { class: 'hidden-audio' });
  /** A weak device can show the server's video of the visuals instead of drawing them. */
  readonly #serverVideoToggle = h('input', { type: 'checkbox', id: 'server-video', class: 'server-video-toggle' });
  readonly #serverVideo = h('video', { class: 'visuals-canvas server-video', hidden: true, muted: true, playsinline: true, 'aria-label': 'The room’s visuals as video from the server' });
  readonly #visualStatus = h('p', { class: 'visual-caption', 'aria-live': 'polite' });
  readonly #visualProblem = h('p', { class: 'hint' });
  readonly #promptInput = h('input', { id: 'prompt-text', type: 'text', maxlength: 200, autocomplete: 'off', placeholder: 'e.g. stormy ocean at night, slow ripples', 'aria-describedby': 'prompt-hint' });
  readonly #promptButton = h('button', { type: 'submit' }, 'Send prompt');
  readonly #promptHint = h('p', { id: 'prompt-hint', class: 'hint' });
  readonly #promptResult = h('p', { class: 'prompt-result', role: 'status' });
  readonly #history = h('ol', { class: 'history', reversed: true });
  readonly #queueList = h('ul', { class: 'queue' });
  readonly #queueBox = h('section', { class: 'panel queue-panel', hidden: true, 'aria-labelledby': 'queue-title' }, h('h2', { id: 'queue-title' }, 'Prompts waiting for you'), this.#queueList);
  readonly #people = h('ul', { class: 'people' });
  readonly #peopleTitle = h('h2', { id: 'people-title' }, 'People');
  readonly #chatLog = h('ol', { class: 'chat-log', 'aria-live': 'polite', 'aria-label': 'Chat messages' });
  readonly #chatInput = h('input', { id: 'chat-text', type: 'text', maxlength: 500, autocomplete: 'off', 'aria-describedby': 'chat-hint' });
  readonly #chatButton = h('button', { type: 'submit' }, 'Send');
  readonly #chatHint = h('p', { id: 'chat-hint', class: 'hint' });
  readonly #reactionFeed = h('ul', { class: 'reaction-feed', 'aria-label': 'Recent reactions' });
  readonly #mixResult = h('p', { class: 'mix-result', role: 'status' });
  #mixResultTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #chatResult = h('p', { class: 'chat-result error', role: 'alert' });
  readonly #reactionResult = h('p', { class: 'reaction-result error', role: 'alert' });
  readonly #hostPanel = foldPanel('host', h('h2', { id: 'host-title' }, 'Host: the room’s rules'), { class: 'host-panel' });
  readonly #stemOpen = new Map<string, HTMLInputElement>();
  readonly #limits = new LimitsEditor((section, ranges) => this.#setRule(section, ranges));
  readonly #policySelect = h('select', { id: 'prompt-policy' });
  readonly #chatEnabled = h('input', { type: 'checkbox', id: 'chat-enabled' });
  /** Moderation, in the host panel: the lock on new joins, removal with the link, clearing prompts. */
  readonly #roomLocked = h('input', { type: 'checkbox', id: 'room-locked' });
  readonly #lockHint = h('p', { id: 'room-locked-hint', class: 'hint', role: 'status' });
  readonly #removeWithdraws = h('input', { type: 'checkbox', id: 'remove-withdraws' });
  readonly #clearList = h('ul', { class: 'clear-prompts' });
  readonly #chatIds = new Set<string>();

  constructor(main: HTMLElement, me: Membership, release: ReleaseView, app: { navigate(path: string): void }) {
    this.#main = main;
    this.#me = me;
    this.#release = release;
    this.#app = app;
    document.title = `${release.title} · Remixroom`;
    this.conn = new RoomConnection(me.roomId, {
      token: () => me.token,
      refresh: () => refreshMembership(me),
    });
    this.conn.provider.awareness.setLocalStateField('user', { name: me.name, userId: me.userId });
    this.#undo = new EditHistory(this.conn);
    this.#takes = new TakesPanel(me, this.conn);
    this.#mixer = new Mixer(
      this.conn,
      release,
      {
        mixLocked: (s) => this.#mixLockReason(s),
        stemLocked: (s, stemId) => this.#stemLockReason(s, stemId),
      },
      () => this.#undo.endStep(),
    );
    this.#audio = new LiveAudio(this.conn, this.#audioElement, async () => (await api.room(me.roomId)).info.streamAdapter, {
      audience: () => this.#audienceNow(),
      playlists: async () => {
        const b = await api.broadcast(me.roomId, me.token);
        const audio = b.renditions?.['audio'];
        if (!b.enabled || !audio) return null;
        const video = b.renditions?.['video'];
        return { audio, ...(video ? { video } : {}) };
      },
      video: this.#serverVideo,
      serverNow: () => this.conn.serverNow(),
    });
    this.#broadcast = new BroadcastPanel(me, this.conn);
    this.#audienceBar = new AudienceBar(this.conn);
    // A broadcast's audience hears the stage a few seconds late: the visuals they draw follow what they hear.
    this.#visuals = new VisualsView(release, { state: () => this.#state, serverNow: () => this.conn.serverNow() - this.#audio.delayMs(), energy: () => this.#audio.energy() }, (s) => {
      this.#visualProblem.textContent = s === 'drawing' ? '' : `Visuals: ${s}`;
    });
    const progress: ProgressSource = {
      onProgress: (fn) => {
        this.conn.socket.on('render:progress', fn);
        return () => void this.conn.socket.off('render:progress', fn);
      },
    };
    this.#clips = new ClipsPanel(me, release, progress);
    this.#visualSaves = new VisualSaves(me, release, progress);
    this.#myThings = new MyThingsPanel(me);
    this.#offs.push(progress.onProgress((p) => this.#myThings.progress(p)));
    this.#build();
    this.#wire();
    // A reload of a page that was playing: the sound comes back (or asks for a tap).
    this.#audio.resumeIfRemembered();
    window.remixroom = {
      role: () => this.#role(this.#state),
      state: () => this.#state,
      connection: () => ({ ...this.conn.state }),
      audio: () => ({ state: this.#audio.state, error: this.#audio.error }),
      audioStats: () => this.#audio.stats(),
      audioLevel: () => this.#audio.energy(),
      audioVia: () => this.#audio.via,
      delayMs: () => this.#audio.delayMs(),
      visuals: () => ({ paramsKey: this.#visuals.paramsKey, framesDrawn: this.#visuals.framesDrawn, status: this.#visuals.status, generatedLoaded: this.#visuals.generatedLoaded }),
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    cancelAnimationFrame(this.#frame);
    if (this.#noticeTimer) clearTimeout(this.#noticeTimer);
    if (this.#mixResultTimer) clearTimeout(this.#mixResultTimer);
    for (const off of this.#offs.splice(0)) off();
    this.#mixer.close();
    this.#undo.close();
    this.#takes.close();
    this.#clips.close();
    this.#visualSaves.close();
    this.#myThings.close();
    this.#visuals.close();
    this.#audio.close();
    this.#broadcast.close();
    this.#modelPanel?.close();
    this.conn.close();
    delete window.remixroom;
  }

  // ---------------------------------------------------------------- layout

  #build(): void {
    const r = this.#release;
    const isHost = this.#me.role === 'host';
    const header = h(
      'section',
      { class: 'room-head' },
      h('div', {}, h('h1', {}, r.title), h('p', { class: 'artist' }, `${r.artist}${r.bpm ? ` · ${r.bpm} BPM` : ''}${r.key ? ` · ${r.key}` : ''}`)),
      h('div', { class: 'me' }, h('span', {}, `You are ${this.#me.name}`), this.#roleBadge),
      this.#status,
    );

    const share = isHost && this.#me.joinUrl ? this.#sharePanel(this.#me.joinUrl) : null;

    // Stage: visuals, audio, transport. Kept compact: the mixer follows it at once.
    const excerptLabel = h('label', { htmlFor: 'excerpt' }, 'Excerpt');
    for (const e of r.excerpts) this.#excerpt.append(h('option', { value: e.id }, `${e.title} (${formatDuration(e.endSec - e.startSec)})`));
    const stage = h(
      'section',
      { class: 'panel stage', 'aria-labelledby': 'stage-title' },
      h('h2', { id: 'stage-title', class: 'visually-hidden' }, 'Visuals and playback'),
      h(
        'figure',
        { class: 'visuals' },
        this.#visuals.canvas,
        this.#serverVideo,
        h('figcaption', {}, this.#visualStatus, this.#visualProblem),
      ),
      h('div', { class: 'audio-row' }, this.#audioButton, this.#audioStatus, this.#audioElement),
      this.#audienceBar.element,
      h(
        'div',
        { class: 'transport', role: 'group', 'aria-label': 'Playback' },
        this.#playButton,
        h('label', { htmlFor: 'seek', class: 'visually-hidden' }, 'Position in the excerpt'),
        this.#seek,
        this.#position,
        h('span', { class: 'excerpt-pick' }, excerptLabel, this.#excerpt),
      ),
      h('div', { class: 'loop', role: 'group', 'aria-label': 'Loop region' }, this.#loopStart, this.#loopEnd, this.#loopClear, this.#loopText),
      this.#transportLock,
    );
    this.#visuals.canvas.setAttribute('role', 'img');
    this.#visuals.canvas.setAttribute('aria-label', 'The room’s visuals, made from the album’s artwork; prompts change them');

    const prompts = foldPanel(
      'prompts',
      'Prompt the visuals',
      { class: 'prompts' },
      h(
        'form',
        { class: 'prompt-form', onsubmit: (ev: SubmitEvent) => this.#sendPrompt(ev) },
        h('label', { htmlFor: 'prompt-text' }, 'Describe what the visuals should become'),
        h('div', { class: 'inline' }, this.#promptInput, this.#promptButton),
        this.#promptHint,
      ),
      this.#promptResult,
      h('h3', {}, 'Prompt history'),
      this.#history,
      h('label', { class: 'server-video-label toggle', htmlFor: 'server-video' }, this.#serverVideoToggle, ' Show the server’s video of the visuals instead of drawing them here (for a weak device; starts the audio)'),
    );

    const mixer = h(
      'section',
      { class: 'panel mixer-panel', 'aria-labelledby': 'mixer-title' },
      h('div', { class: 'mixer-head' }, h('h2', { id: 'mixer-title' }, 'The mix'), this.#undo.element),
      this.#mixResult,
      this.#mixer.element,
      h('p', { class: 'hint' }, 'Everyone here moves the same controls and hears the result. Arrow keys nudge a fader, Shift+arrow moves it further; double-click resets it. Ctrl+Z undoes your own last move (Ctrl+Shift+Z or Ctrl+Y redoes it).'),
      this.#takes.element,
    );

    const reactions = h('div', { class: 'reactions', role: 'group', 'aria-label': 'Reactions' });
    for (const emoji of REACTIONS) reactions.append(h('button', { type: 'button', class: 'reaction', 'aria-label': `React with ${emoji}`, onclick: () => this.#react(emoji) }, emoji));
    const social = h(
      'aside',
      { class: 'social' },
      foldPanel('people', this.#peopleTitle, { class: 'people-panel' }, this.#people),
      foldPanel(
        'chat',
        'Chat',
        { class: 'chat' },
        this.#chatLog,
        h(
          'form',
          { class: 'chat-form', onsubmit: (ev: SubmitEvent) => this.#sendChat(ev) },
          h('label', { htmlFor: 'chat-text' }, 'Message'),
          h('div', { class: 'inline' }, this.#chatInput, this.#chatButton),
          this.#chatHint,
          this.#chatResult,
        ),
        reactions,
        this.#reactionResult,
        this.#reactionFeed,
      ),
    );

    const clips = foldPanel('clips', 'Save clips and pictures', { class: 'saves' }, this.#visualSaves.element, this.#clips.element);

    // Built for everyone: a member a host promotes gets it at once (it shows while the role is host).
    this.#buildHostPanel();
    this.#hostPanel.hidden = !isHost;
    this.#main.append(
      header,
      this.#notice,
      h('div', { class: 'room-grid' }, h('div', { class: 'room-main' }, stage, mixer, this.#queueBox, prompts, ...(share ? [share] : []), clips, this.#myThings.element, this.#hostPanel), social),
    );
  }

  #sharePanel(joinUrl: string): HTMLElement {
    const link = h('input', { id: 'share-link', type: 'text', readonly: true, value: joinUrl, 'aria-describedby': 'share-hint' });
    const copied = h('span', { class: 'copied', role: 'status' });
    const copy = h('button', { type: 'button', class: 'primary' }, 'Copy link');
    copy.addEventListener('click', () => {
      link.select();
      const done = () => (copied.textContent = 'Copied.');
      if (navigator.clipboard?.writeText) navigator.clipboard.writeText(joinUrl).then(done, () => (copied.textContent = 'Select the link and copy it (Ctrl+C or long-press).'));
      else copied.textContent = 'Select the link and copy it (Ctrl+C or long-press).';
    });
    const listenerLink = h('div', { class: 'extra-link' });
    const makeListener = h('button', { type: 'button' }, 'Make a listen-only link');
    makeListener.addEventListener('click', () => {
      makeListener.disabled = true;
      api
        .invite(this.#me.roomId, this.#me.token, 'listener')
        .then(({ joinUrl: url }) => {
          listenerLink.replaceChildren(h('label', { htmlFor: 'listener-link' }, 'Listen-only link'), h('input', { id: 'listener-link', type: 'text', readonly: true, value: url }));
        })
        .catch((err: unknown) => {
          makeListener.disabled = false;
          listenerLink.textContent = `Could not make the link. ${apiErrorWords(err)}`;
        });
    });
    return foldPanel(
      'invite',
      h('h2', { id: 'share-title' }, 'Invite people'),
      { class: 'share' },
      h('label', { htmlFor: 'share-link' }, 'Share this link: whoever opens it can join with a name'),
      h('div', { class: 'inline' }, link, copy, copied),
      h('p', { id: 'share-hint', class: 'hint' }, 'Anyone with the link can join for 7 days.'),
      h('details', { class: 'qr-box' }, h('summary', {}, 'Show a QR code for phones'), qrCanvas(joinUrl, 'QR code of the join link: scan it with a phone camera to join')),
      makeListener,
      listenerLink,
    );
  }

  #buildHostPanel(): void {
    const stems = h('fieldset', {}, h('legend', {}, 'Stems others may change'));
    for (const s of this.#release.stems) {
      const id = `open-${s.id}`;
      const box = h('input', { type: 'checkbox', id, 'data-stem': s.id });
      box.addEventListener('change', () => this.#setStemOpen(s.id, box.checked));
      this.#stemOpen.set(s.id, box);
      stems.append(h('label', { class: 'toggle', htmlFor: id }, box, ` ${s.title}`));
    }
    const order = ['open', 'queued', 'closed'] as const;
    const words = { open: 'anyone’s prompt applies at once', queued: 'prompts wait for my approval', closed: 'prompts are off' };
    for (const p of order.slice(order.indexOf(this.#release.rules.prompts.policy))) this.#policySelect.append(h('option', { value: p }, words[p]));
    this.#policySelect.addEventListener('change', () => this.#setRule('promptPolicy', this.#policySelect.value));
    this.#chatEnabled.addEventListener('change', () => this.#setRule('chatEnabled', this.#chatEnabled.checked));
    this.#roomLocked.addEventListener('change', () => {
      const locked = this.#roomLocked.checked;
      this.#roomLocked.disabled = true;
      api
        .setLocked(this.#me.roomId, this.#me.token, locked)
        .catch((err: unknown) => {
          this.#roomLocked.checked = !locked;
          this.#showNotice(`The room was not ${locked ? 'locked' : 'unlocked'}. ${apiErrorWords(err)}`);
        })
        .finally(() => (this.#roomLocked.disabled = false));
    });
    const moderation = h(
      'fieldset',
      { class: 'moderation' },
      h('legend', {}, 'Keep the room in hand'),
      h('label', { class: 'toggle', htmlFor: 'room-locked' }, this.#roomLocked, ' Lock the room to new people'),
      this.#lockHint,
      h('label', { class: 'toggle', htmlFor: 'remove-withdraws' }, this.#removeWithdraws, ' When I remove someone, also withdraw the link they joined with'),
      h('p', { class: 'hint' }, 'Everyone else who has that link will need a new one.'),
      h('h3', {}, 'Clear a prompt for everyone'),
      this.#clearList,
    );
    const linkRole = h('select', { id: 'link-role' }, ...(['remixer', 'listener', ...(this.#me.creator ? ['host'] : [])] as const).map((r) => h('option', { value: r }, r)));
    const linkUses = h('input', { id: 'link-uses', type: 'number', min: 1, max: 100000, placeholder: 'no limit', inputmode: 'numeric' });
    const linkOut = h('div', { class: 'extra-link', role: 'status' });
    const makeLink = h('button', { type: 'button' }, 'Make a link');
    makeLink.addEventListener('click', () => {
      const uses = linkUses.value.trim() === '' ? undefined : Number(linkUses.value);
      if (uses !== undefined && !(Number.isInteger(uses) && uses >= 1 && uses <= 100_000)) {
        linkOut.textContent = 'The number of people must be a whole number from 1 to 100000, or empty for no limit.';
        return;
      }
      makeLink.disabled = true;
      api
        .newLink(this.#me.roomId, this.#me.token, linkRole.value as Role, uses)
        .then(({ joinUrl: url, maxUses }) => {
          const id = uid('made-link');
          linkOut.replaceChildren(
            h('label', { htmlFor: id }, `A ${linkRole.value} link${maxUses ? ` for ${maxUses} ${maxUses === 1 ? 'person' : 'people'}` : ''}`),
            h('input', { id, type: 'text', readonly: true, value: url }),
          );
        })
        .catch((err: unknown) => {
          linkOut.textContent = `Could not make the link. ${apiErrorWords(err)}`;
        })
        .finally(() => {
          makeLink.disabled = false;
        });
    });
    const links = h(
      'fieldset',
      { class: 'links' },
      h('legend', {}, 'Invite more people'),
      h('div', { class: 'field' }, h('label', { htmlFor: 'link-role' }, 'They join as'), linkRole),
      h('div', { class: 'field' }, h('label', { htmlFor: 'link-uses' }, 'How many people the link lets in'), linkUses),
      makeLink,
      linkOut,
    );
    const end = h('button', { type: 'button', class: 'danger', hidden: !this.#me.creator }, 'End the room for everyone');
    end.addEventListener('click', () => {
      if (!confirm('End the room for everyone? Nobody can come back in.')) return;
      end.disabled = true;
      api.endRoom(this.#me.roomId, this.#me.token).catch((err: unknown) => {
        end.disabled = false;
        this.#showNotice(`The room could not be ended. ${apiErrorWords(err)}`);
      });
    });
    this.#modelPanel?.close();
    this.#modelPanel = new ModelPanel(this.#release.id);
    this.#hostPanel.append(
      this.#broadcast.element,
      stems,
      h('div', { class: 'field' }, h('label', { htmlFor: 'prompt-policy' }, 'Prompts'), this.#policySelect),
      h('label', { class: 'toggle', htmlFor: 'chat-enabled' }, this.#chatEnabled, ' Chat on'),
      moderation,
      this.#limits.element,
      links,
      this.#modelPanel.element,
      ...[hostLinkBox(this.#me)].filter((x): x is HTMLElement => x !== null),
      end,
    );
  }

  // ---------------------------------------------------------------- wiring

  #wire(): void {
    const conn = this.conn;
    this.#offs.push(conn.onState((s) => this.#showConnection(s)));
    this.#offs.push(conn.onRefusal((r) => this.#refused(r)));
    for (const name of ['meta', 'mix', 'arrangement', 'visual', 'rules'] as const) {
      const map = conn.doc.getMap(name);
      const fn = () => this.#queueRender();
      map.observeDeep(fn);
      this.#offs.push(() => map.unobserveDeep(fn));
    }
    conn.provider.on('sync', () => this.#queueRender());

    const s = conn.socket;
    s.on('presence', (p) => {
      this.#presence = p;
      this.#renderPeople();
    });
    s.on('chat:message', (m) => this.#addChat(m));
    // What was said before this connection (kept by the room): repeats are dropped by id.
    s.on('chat:history', (ms) => ms.forEach((m) => this.#addChat(m)));
    s.on('reaction', (r) => this.#addReaction(r));
    s.on('prompt:applied', (p) => this.#applied(p));
    s.on('prompt:queue', (q) => {
      this.#queue = q;
      this.#renderQueue();
    });
    s.on('room:notice', (n) => {
      if (n.code === 'video_stopped') this.#audio.serverVideoStopped(n.message);
      this.#showNotice(n.message, n.level === 'info' ? 'info' : 'warn');
    });
    s.on('room:ended', () => this.#ended());

    this.#audioButton.addEventListener('click', () => {
      if (this.#audio.state === 'off' || this.#audio.state === 'failed' || this.#audio.state === 'blocked') void this.#audio.start();
      else void this.#audio.stop();
    });
    this.#offs.push(this.#audio.onChange(() => this.#renderAudio()));
    this.#serverVideoToggle.addEventListener('change', () => {
      const on = this.#serverVideoToggle.checked;
      void this.#audio.setVideo(on).then(() => {
        if (on && this.#audio.state === 'off') return this.#audio.start();
      });
    });

    this.#playButton.addEventListener('click', () => {
      const playing = Boolean(this.#state?.arrangement.transport.playing);
      this.#setArrangement(['transport'], { playing: !playing });
    });
    this.#seek.addEventListener('change', () => this.#setArrangement(['transport'], { positionSec: Number(this.#seek.value) }));
    this.#excerpt.addEventListener('change', () => {
      const e = this.#release.excerpts.find((x) => x.id === this.#excerpt.value);
      if (!e) return;
      this.conn.doc.transact(() => {
        this.conn.doc.getMap('arrangement').set('excerptId', e.id);
        (this.conn.doc.getMap('arrangement').get('transport') as Y.Map<unknown> | undefined)?.set('positionSec', 0);
      });
    });

    // The loop is kept in seconds of the piece; the transport's position in seconds of the excerpt.
    const here = (): number | null => {
      const st = this.#state;
      const e = st && this.#release.excerpts.find((x) => x.id === st.arrangement.excerptId);
      return st && e ? Math.round((e.startSec + transportPosition(st, this.#release, this.conn.serverNow())) * 100) / 100 : null;
    };
    this.#loopStart.addEventListener('click', () => {
      const at = here();
      const end = this.#state?.arrangement.loopEndSec ?? null;
      const e = this.#currentExcerpt();
      if (at === null || !e) return;
      this.#setArrangement([], { loopStartSec: at, loopEndSec: end !== null && end - at >= 0.25 ? end : Math.min(e.endSec, at + 4) });
    });
    this.#loopEnd.addEventListener('click', () => {
      const at = here();
      const start = this.#state?.arrangement.loopStartSec ?? null;
      const e = this.#currentExcerpt();
      if (at === null || !e) return;
      this.#setArrangement([], { loopStartSec: start !== null && at - start >= 0.25 ? start : Math.max(e.startSec, at - 4), loopEndSec: at });
    });
    this.#loopClear.addEventListener('click', () => this.#setArrangement([], { loopStartSec: null, loopEndSec: null }));

    const tick = () => {
      if (this.#closed) return;
      this.#frame = requestAnimationFrame(tick);
      this.#renderPosition();
      if (this.#inAudience) this.#audienceBar.update(true, this.#audio.via === 'hls' ? this.#audio.delayMs() : null);
    };
    this.#frame = requestAnimationFrame(tick);
  }

  // ---------------------------------------------------------------- writing

  #setArrangement(path: string[], values: Record<string, unknown>): void {
    let map: unknown = this.conn.doc.getMap('arrangement');
    for (const p of path) map = map instanceof Y.Map ? map.get(p) : undefined;
    if (!(map instanceof Y.Map)) return;
    const target = map;
    this.conn.doc.transact(() => {
      for (const [k, v] of Object.entries(values)) target.set(k, v);
    });
  }

  #currentExcerpt(): ReleaseView['excerpts'][number] | undefined {
    const id = this.#state?.arrangement.excerptId;
    return this.#release.excerpts.find((x) => x.id === id);
  }

  #setRule(key: string, value: unknown): void {
    this.conn.doc.transact(() => this.conn.doc.getMap('rules').set(key, value));
  }

  #setStemOpen(stemId: string, open: boolean): void {
    const current = this.#state?.rules.editableStems ?? [];
    const next = open ? [...new Set([...current, stemId])] : current.filter((s) => s !== stemId);
    // Kept in the release's order, so the list reads the same for everyone.
    const order = this.#release.stems.map((s) => s.id);
    next.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    this.#setRule('editableStems', next);
  }

  #sendChat(ev: SubmitEvent): void {
    ev.preventDefault();
    const text = this.#chatInput.value.trim();
    if (!text) return;
    this.#chatButton.disabled = true;
    this.conn.socket
      .timeout(10_000)
      .emitWithAck('chat:send', { text })
      .then((r) => {
        if (r.ok) {
          this.#chatInput.value = '';
          this.#chatResult.textContent = '';
          this.#addChat(r.message);
        } else this.#chatResult.textContent = `Not sent. ${refusalWords(r.refusal, 'message')}`;
      })
      .catch(() => (this.#chatResult.textContent = 'Not sent: the server did not answer. Check your connection and send it again.'))
      .finally(() => {
        this.#chatButton.disabled = false;
        this.#chatInput.focus();
      });
  }

  #react(emoji: (typeof REACTIONS)[number]): void {
    this.conn.socket
      .timeout(5000)
      .emitWithAck('reaction:send', { emoji })
      .then((r) => {
        this.#reactionResult.textContent = r.ok ? '' : `Reaction not sent. ${refusalWords(r.refusal, 'reaction')}`;
      })
      .catch(() => (this.#reactionResult.textContent = 'Reaction not sent: the server did not answer.'));
  }

  #sendPrompt(ev: SubmitEvent): void {
    ev.preventDefault();
    const text = this.#promptInput.value.trim();
    if (!text) return;
    this.#promptButton.disabled = true;
    this.#promptResult.textContent = 'Sending…';
    this.conn.socket
      .timeout(10_000)
      .emitWithAck('prompt:submit', { text })
      .then((r) => {
        if (!r.ok) {
          this.#promptResult.textContent = `Not applied. ${refusalWords(r.refusal, 'prompt')}`;
          return;
        }
        this.#promptInput.value = '';
        if (r.status === 'queued') this.#promptResult.textContent = `“${text}” is waiting for the host’s approval.`;
        else if (this.#promptResult.textContent === 'Sending…') this.#promptResult.textContent = `“${text}” applied.`;
      })
      .catch(() => (this.#promptResult.textContent = 'Not sent: the server did not answer. Check your connection and send it again.'))
      .finally(() => {
        this.#promptButton.disabled = false;
      });
  }

  #decide(promptId: string, approve: boolean): void {
    this.conn.socket
      .timeout(10_000)
      .emitWithAck('prompt:decide', { promptId, approve })
      .then((r) => {
        if (!r.ok) this.#showNotice(refusalWords(r.refusal, 'prompt'));
      })
      .catch(() => this.#showNotice('The server did not answer. Check your connection and try again.'));
  }

  // ---------------------------------------------------------------- reading

  #role(state: RoomState | null): Role {
    return state?.rules.roles?.[this.#me.userId] ?? this.#me.role;
  }

  #mixLockReason(state: RoomState): string | null {
    return canRemix(this.#role(state)) ? null : 'You are listening: you can hear the mix, chat and react, but not change the mix.';
  }

  #stemLockReason(state: RoomState, stemId: string): string | null {
    if (this.#role(state) === 'host' || state.rules.editableStems.includes(stemId)) return null;
    const title = this.#release.stems.find((s) => s.id === stemId)?.title ?? stemId;
    return `The host has locked the ${title.toLowerCase()}.`;
  }

  #queueRender(): void {
    if (this.#renderQueued) return;
    this.#renderQueued = true;
    queueMicrotask(() => {
      this.#renderQueued = false;
      if (!this.#closed) this.#render();
    });
  }

  #render(): void {
    const doc = this.conn.doc;
    // Until the first sync the document is empty: nothing to show yet.
    if (!(doc.getMap('mix').get('stems') instanceof Y.Map) || !(doc.getMap('arrangement').get('transport') instanceof Y.Map)) return;
    const state = readRoomState(doc);
    this.#state = state;
    const role = this.#role(state);
    this.#roleBadge.textContent = ROLE_WORDS[role];
    this.#roleBadge.dataset['role'] = role;
    this.#mixer.update(state);
    this.#undo.setEnabled(!this.#mixLockReason(state));
    this.#takes.update(state, role);

    // Transport.
    const mixLock = this.#mixLockReason(state);
    const t = state.arrangement.transport;
    this.#playButton.textContent = t.playing ? '❚❚ Pause' : '▶ Play';
    this.#playButton.setAttribute('aria-pressed', String(t.playing));
    this.#playButton.setAttribute('aria-label', t.playing ? 'Pause the room' : 'Play the room');
    for (const el of [this.#playButton, this.#seek, this.#excerpt, this.#loopStart, this.#loopEnd, this.#loopClear]) el.disabled = Boolean(mixLock);
    const region = playRegion(state, this.#release);
    const looping = state.arrangement.loopStartSec !== null && state.arrangement.loopEndSec !== null;
    const ex = this.#currentExcerpt();
    this.#loopText.textContent =
      looping && ex && (region.startSec !== ex.startSec || region.endSec !== ex.endSec)
        ? `Looping ${formatDuration(region.startSec - ex.startSec)}–${formatDuration(region.endSec - ex.startSec)} of the excerpt.`
        : 'No loop: the whole excerpt plays.';
    this.#loopClear.disabled = Boolean(mixLock) || !looping;
    this.#transportLock.hidden = !mixLock;
    this.#transportLock.textContent = mixLock ? `🔒 ${mixLock}` : '';
    if (document.activeElement !== this.#excerpt) this.#excerpt.value = state.arrangement.excerptId;
    const e = this.#release.excerpts.find((x) => x.id === state.arrangement.excerptId) ?? this.#release.excerpts[0];
    if (e) this.#seek.max = String(e.endSec - e.startSec);

    // Prompts.
    const policy = state.rules.promptPolicy;
    const promptsOff = policy === 'closed' && role !== 'host';
    this.#promptInput.disabled = promptsOff;
    this.#promptButton.disabled = promptsOff;
    this.#promptHint.textContent = promptsOff
      ? '🔒 The host has turned prompts off.'
      : policy === 'queued' && role !== 'host'
        ? 'Prompts wait for the host’s approval before they change the visuals.'
        : 'Your prompt changes the visuals for everyone at once.';
    const cur = state.visual;
    // The summary names the prompt itself ("'stormy' → darker palette, …").
    this.#visualStatus.replaceChildren(cur.prompt ? `Now: ${cur.summary ?? `“${cur.prompt}”`}` : 'Now: the cover, as the artist made it. Type a prompt to change it.');
    if (cur.prompt && cur.model) this.#visualStatus.append(' ', modelRecordLink(cur.model.recordUrl));
    this.#renderHistory(state);

    // Chat.
    const chatOff = !state.rules.chatEnabled && role !== 'host';
    this.#chatInput.disabled = chatOff;
    this.#chatButton.disabled = chatOff;
    this.#chatHint.textContent = chatOff ? '🔒 The host has turned chat off.' : '';

    // Host controls.
    if (role === 'host') {
      for (const [stemId, box] of this.#stemOpen) box.checked = state.rules.editableStems.includes(stemId);
      this.#policySelect.value = policy;
      this.#chatEnabled.checked = state.rules.chatEnabled;
      const locked = state.rules.locked === true;
      if (!this.#roomLocked.disabled) this.#roomLocked.checked = locked;
      this.#lockHint.textContent = locked ? 'Locked: no link lets anyone new in. Everyone here stays.' : 'Open: anyone with a link can join.';
      this.#renderClearList(state);
      this.#limits.update(state);
    }
    this.#hostPanel.hidden = role !== 'host';
    this.#broadcast.update(state.rules.broadcast === true);
    if (role === 'host') this.#broadcast.open();
    else this.#broadcast.close();
    // Broadcast mode (or this member's role) changed: the sound moves between the stage's WebRTC and the audience's HLS.
    const inAudience = this.#audienceNow();
    if (inAudience !== this.#inAudience) {
      this.#inAudience = inAudience;
      this.#audio.audienceChanged();
    }
    this.#audienceBar.update(inAudience, this.#audio.via === 'hls' ? this.#audio.delayMs() : null);
  }

  /** In a broadcast's audience: the room broadcasts and this member listens (hosts and remixers are the stage). */
  #audienceNow(): boolean {
    const state = this.#state;
    return state !== null && state.rules.broadcast === true && this.#role(state) === 'listener';
  }

  #renderPosition(): void {
    const s = this.#state;
    if (!s) return;
    const pos = transportPosition(s, this.#release, this.conn.serverNow());
    const e = this.#release.excerpts.find((x) => x.id === s.arrangement.excerptId);
    const text = `${formatDuration(pos)} / ${formatDuration(e ? e.endSec - e.startSec : 0)}`;
    if (this.#position.textContent !== text) this.#position.textContent = text;
    if (document.activeElement !== this.#seek) this.#seek.value = String(Math.round(pos * 10) / 10);
  }

  #renderHistory(state: RoomState): void {
    // Keys sort as strings ("<time>-<n>"); as numbers they are NaN.
    const entries = Object.entries(state.visual.history ?? {})
      .map(([seq, e]) => ({ seq, ...e }))
      .sort((a, b) => (a.seq < b.seq ? 1 : a.seq > b.seq ? -1 : 0));
    const key = entries.map((e) => e.seq).join(',');
    if (this.#history.dataset['key'] === key) return;
    this.#history.dataset['key'] = key;
    this.#history.replaceChildren(
      ...(entries.length === 0
        ? [h('li', { class: 'empty' }, 'No prompts yet.')]
        : entries.map((e) => h('li', {}, h('b', {}, e.name), ': ', h('span', { class: 'summary' }, e.summary || `“${e.text}”`)))),
    );
  }

  /** The host's list of the prompt history, each with a button that clears it for everyone. */
  #renderClearList(state: RoomState): void {
    const entries = Object.entries(state.visual.history ?? {}).sort(([a], [b]) => (a < b ? 1 : a > b ? -1 : 0));
    const key = entries.map(([seq]) => seq).join(',');
    if (this.#clearList.dataset['key'] === key) return;
    this.#clearList.dataset['key'] = key;
    if (entries.length === 0) {
      this.#clearList.replaceChildren(h('li', { class: 'empty hint' }, 'No prompts yet.'));
      return;
    }
    this.#clearList.replaceChildren(
      ...entries.map(([seq, e]) => {
        const onShow = state.visual.prompt === e.text && state.visual.promptAtMs === e.atMs;
        const clear = h('button', { type: 'button', class: 'clear-prompt', 'aria-label': `Clear “${e.text}” from ${e.name} for everyone` }, 'Clear');
        clear.addEventListener('click', () => {
          clear.disabled = true;
          api
            .clearPrompt(this.#me.roomId, this.#me.token, seq)
            .then(({ visualsReset }) => {
              if (visualsReset) this.#showNotice('The prompt is cleared. It was on show, so the visuals are back to the artist’s own look.', 'info');
            })
            .catch((err: unknown) => {
              clear.disabled = false;
              this.#showNotice(`The prompt was not cleared. ${apiErrorWords(err)}`);
            });
        });
        return h('li', { 'data-seq': seq }, h('span', {}, h('b', {}, e.name), `: “${e.text}”`, onShow ? h('span', { class: 'hint' }, ' (on show now: clearing it resets the visuals)') : null), ' ', clear);
      }),
    );
  }

  #renderQueue(): void {
    const isHost = this.#role(this.#state) === 'host';
    this.#queueBox.hidden = !isHost || this.#queue.length === 0;
    this.#queueList.replaceChildren(
      ...this.#queue.map((p) =>
        h(
          'li',
          {},
          h('span', {}, h('b', {}, p.name), `: “${p.text}”`),
          h('button', { type: 'button', onclick: () => this.#decide(p.promptId, true), 'aria-label': `Approve “${p.text}” from ${p.name}` }, 'Approve'),
          h('button', { type: 'button', onclick: () => this.#decide(p.promptId, false), 'aria-label': `Drop “${p.text}” from ${p.name}` }, 'Drop'),
        ),
      ),
    );
  }

  #renderPeople(): void {
    const p = this.#presence;
    this.#peopleTitle.textContent = `People here (${p.count})`;
    const amHost = this.#role(this.#state) === 'host';
    this.#people.replaceChildren(
      ...p.members.map((m) => {
        const you = m.userId === this.#me.userId;
        const li = h('li', { 'data-user': m.userId }, h('span', { class: 'name' }, m.name, you ? ' (you)' : ''), ' ', h('span', { class: 'role-badge', 'data-role': m.role }, ROLE_WORDS[m.role]));
        // Hosts change others' roles and remove people, but never the member who opened the room.
        if (amHost && !you && !m.creator) {
          const id = uid('role');
          const sel = h('select', { id, 'aria-label': `Role of ${m.name}` }, ...(['remixer', 'listener', 'host'] as const).map((r) => h('option', { value: r, selected: r === m.role }, r)));
          sel.addEventListener('change', () => {
            api.setRole(this.#me.roomId, this.#me.token, m.userId, sel.value as Role).catch((err: unknown) => this.#showNotice(`The role was not changed. ${apiErrorWords(err)}`));
          });
          const remove = h('button', { type: 'button', class: 'remove-member', 'aria-label': `Remove ${m.name} from the room` }, 'Remove');
          remove.addEventListener('click', () => {
            const withdraw = this.#removeWithdraws.checked;
            const after = withdraw ? 'The link they joined with is withdrawn too: nobody can join through it any more.' : 'Their link still works for others (and for them, as someone new), unless you lock the room or withdraw it.';
            if (!confirm(`Remove ${m.name} from the room? ${after}`)) return;
            remove.disabled = true;
            api.removeMember(this.#me.roomId, this.#me.token, m.userId, withdraw).catch((err: unknown) => {
              remove.disabled = false;
              this.#showNotice(`${m.name} was not removed. ${apiErrorWords(err)}`);
            });
          });
          li.append(' ', sel, ' ', remove);
        } else if (m.creator) li.append(' ', h('span', { class: 'hint' }, 'opened the room'));
        return li;
      }),
    );
    if (p.count > p.members.length) this.#people.append(h('li', { class: 'more' }, `and ${p.count - p.members.length} more`));
  }

  #addChat(m: ChatMessage): void {
    if (this.#chatIds.has(m.id)) return;
    this.#chatIds.add(m.id);
    const time = new Date(m.atMs).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    this.#chatLog.append(h('li', { 'data-id': m.id }, h('b', {}, m.name), m.role !== 'remixer' ? h('span', { class: 'role-badge small', 'data-role': m.role }, ROLE_WORDS[m.role]) : null, ': ', h('span', { class: 'text' }, m.text), h('time', {}, ` ${time}`)));
    while (this.#chatLog.children.length > CHAT_KEEP) this.#chatLog.firstElementChild?.remove();
    this.#chatLog.scrollTop = this.#chatLog.scrollHeight;
  }

  #addReaction(r: Reaction): void {
    this.#reactionFeed.prepend(h('li', {}, h('span', { class: 'emoji' }, r.emoji), ` ${r.name}`));
    while (this.#reactionFeed.children.length > 8) this.#reactionFeed.lastElementChild?.remove();
  }

  #applied(p: AppliedPrompt): void {
    this.#promptResult.replaceChildren(`${p.name}’s prompt did this: ${p.summary}`);
    if (p.generated) this.#promptResult.append(' ', modelRecordLink(p.generated.recordUrl));
  }

  #renderAudio(): void {
    const a = this.#audio;
    const words: Record<string, string> = {
      off: 'Audio is off. Press “Start audio” to hear the room’s mix.',
      joining: 'Joining the live mix…',
      playing: 'Playing the room’s live mix.',
      rejoining: `Reconnecting the audio: ${a.error ?? ''}`,
      blocked: 'Tap anywhere to bring the sound back.',
      failed: `The audio could not start: ${a.error ?? 'unknown error'}. Press “Start audio” to try again.`,
    };
    if (a.via === 'hls') words['playing'] = 'Playing the room’s broadcast.';
    this.#audioStatus.textContent = words[a.state] ?? a.state;
    this.#audioButton.textContent = a.state === 'off' || a.state === 'failed' || a.state === 'blocked' ? '▶ Start audio' : '■ Stop audio';
    this.#audioButton.dataset['state'] = a.state;
    // The broadcast's video rendition plays in the video element itself (with the sound).
    if (a.hlsVideo) {
      this.#serverVideo.hidden = false;
      this.#visuals.canvas.hidden = true;
      this.#visuals.paused = true;
      return;
    }
    // The server's video, when asked for and sent: shown instead of the drawing, which then pauses.
    const track = this.#serverVideoToggle.checked ? a.videoTrack : null;
    const current = (this.#serverVideo.srcObject as MediaStream | null)?.getVideoTracks()[0] ?? null;
    if (track !== current) {
      this.#serverVideo.srcObject = track ? new MediaStream([track]) : null;
      this.#serverVideo.muted = true;
      if (track) void this.#serverVideo.play().catch(() => undefined);
    }
    this.#serverVideo.hidden = !track;
    this.#visuals.canvas.hidden = Boolean(track);
    this.#visuals.paused = Boolean(track);
    if (this.#serverVideoToggle.checked && a.state === 'playing' && !track) {
      this.#audioStatus.textContent = `${words[a.state]} No video from the server: ${a.videoRefused ?? 'not available'}.`;
    }
  }

  #showConnection(s: ConnectionState): void {
    const word = (l: string, synced?: boolean) => (l === 'connected' ? (synced === false ? 'syncing' : 'connected') : l === 'connecting' ? 'reconnecting…' : l === 'closed' ? 'closed' : 'offline');
    const sync = word(s.sync, s.synced);
    const chat = word(s.socket);
    const ok = s.sync === 'connected' && s.synced && s.socket === 'connected';
    this.#status.dataset['ok'] = String(ok);
    this.#status.dataset['sync'] = s.sync;
    this.#status.dataset['socket'] = s.socket;
    this.#status.replaceChildren(
      h('span', { class: `dot ${ok ? 'ok' : 'bad'}`, 'aria-hidden': 'true' }),
      `Room: ${sync} · Live channel: ${chat}`,
      ...(s.socketError && s.socket !== 'connected' ? [h('span', { class: 'err' }, ` (${s.socketError})`)] : []),
    );
    if (s.closedReason) this.#ended(s.closedReason);
  }

  #refused(r: Refusal): void {
    const text = `Your change was undone. ${refusalWords(r, 'change')}`;
    this.#showNotice(text);
    // Said again by the mixer, where the change was most likely made: the notice at the top may be out of view.
    this.#mixResult.textContent = text;
    if (this.#mixResultTimer) clearTimeout(this.#mixResultTimer);
    this.#mixResultTimer = setTimeout(() => (this.#mixResult.textContent = ''), 8000);
  }

  #showNotice(message: string, level: 'warn' | 'info' = 'warn'): void {
    this.#notice.hidden = false;
    this.#notice.dataset['level'] = level;
    this.#notice.textContent = message;
    if (this.#noticeTimer) clearTimeout(this.#noticeTimer);
    this.#noticeTimer = setTimeout(() => {
      this.#notice.hidden = true;
    }, 8000);
  }

  #ended(reason = 'The host ended this room.'): void {
    if (this.#closed) return;
    const main = this.#main;
    const me = this.#me;
    const app = this.#app;
    this.close();
    main.replaceChildren(...endedPage(me, reason, app));
    // A room that ended keeps its members' things theirs (the member is kept to read them); anyone
    // out of a room still open (removed, access over) is forgotten.
    api.room(me.roomId).then(
      (r) => {
        if (!r.info.ended) forgetMembership(me.roomId, me.userId);
      },
      // Not known now (offline): kept; the room's address says later whether it is still there.
      () => undefined,
    );
  }
}

/** The page of a room that is over for this member: why, and (when the room ended) what they made there. */
function endedPage(me: Membership, reason: string, app: { navigate(path: string): void }): HTMLElement[] {
  const over = reason === 'The host ended this room.' || reason === 'This room has ended.' || /room has ended/.test(reason);
  const page = h(
    'section',
    { class: 'panel narrow ended' },
    h('h1', {}, over ? 'The room is over' : 'You are out of the room'),
    h('p', { role: 'alert' }, reason),
    h('a', { href: '/', class: 'button', onclick: (ev: MouseEvent) => (ev.preventDefault(), app.navigate('/')) }, 'Open a new room'),
  );
  if (!over) return [page];
  const things = new MyThingsPanel(me, { ended: true });
  things.element.classList.add('narrow');
  return [page, things.element];
}

const PANEL_KEY = 'remixroom.panel.';

/** The link to the training record of the model that drew part of the picture. */
function modelRecordLink(url: string): HTMLElement {
  return h('a', { href: url, target: '_blank', rel: 'noopener', class: 'model-record' }, '(what the model was trained on)');
}

/**
 * A panel that opens and closes (native <details>): its heading is the summary.
 * Open at first; each browser remembers whether a person closed it.
 */
function foldPanel(key: string, title: string | HTMLElement, props: { class: string }, ...children: HTMLElement[]): HTMLDetailsElement {
  const heading = typeof title === 'string' ? h('h2', {}, title) : title;
  const details = h('details', { class: `panel fold ${props.class}`, 'data-panel': key }, h('summary', {}, heading), ...children);
  details.open = panelOpen(key);
  details.addEventListener('toggle', () => {
    try {
      localStorage.setItem(PANEL_KEY + key, details.open ? 'open' : 'closed');
    } catch {
      // Not remembered; no harm.
    }
  });
  return details;
}

function panelOpen(key: string): boolean {
  try {
    return localStorage.getItem(PANEL_KEY + key) !== 'closed';
  } catch {
    return true;
  }
}
