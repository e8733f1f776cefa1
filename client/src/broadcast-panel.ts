// Broadcast mode on the page. For a host (the host panel): the switch between
// a party (everyone on WebRTC) and a stage with an audience (listeners on the
// room's HLS), the listen link anyone can play, the listeners asking to join
// the stage (accepting makes them remixers: they move to WebRTC), and the
// room's push to a streaming platform (RTMP) with its state. For a listener in
// the audience: how far behind the stage they hear, and "Join the stage".
import { api, type RtmpStatus } from './api.ts';
import { h } from './dom.ts';
import type { Membership } from './session.ts';
import type { RoomConnection } from './room-connection.ts';
import type { StageRequest } from '../../shared/socket-events.ts';
import { apiErrorWords } from './words.ts';

const RTMP_POLL_MS = 2000;
const STATUS_WORDS: Record<string, string> = {
  connecting: 'connecting to the platform…',
  live: 'live on the platform',
  retrying: 'the connection dropped; trying again',
  failed: 'stopped: it kept failing',
  stopped: 'stopped',
};

export class BroadcastPanel {
  readonly element: HTMLElement;
  readonly #me: Membership;
  readonly #toggle = h('input', { type: 'checkbox', id: 'broadcast-mode' });
  readonly #hint = h('p', { class: 'hint', role: 'status' });
  readonly #listenLink = h('div', { class: 'listen-link' });
  readonly #requests = h('ul', { class: 'stage-requests', 'aria-label': 'Listeners asking to join the stage' });
  readonly #rtmpUrl = h('input', { id: 'rtmp-url', type: 'url', placeholder: 'rtmp://live.example.com/app', autocomplete: 'off', maxlength: 512 });
  readonly #rtmpKey = h('input', { id: 'rtmp-key', type: 'password', placeholder: 'stream key', autocomplete: 'off', maxlength: 512 });
  readonly #rtmpStart = h('button', { type: 'button' }, 'Go live on the platform');
  readonly #rtmpStop = h('button', { type: 'button', hidden: true }, 'Stop the push');
  readonly #rtmpState = h('p', { class: 'rtmp-state', role: 'status' });
  #enabled = false;
  #rtmpTimer: ReturnType<typeof setInterval> | null = null;
  readonly #pending = new Map<string, StageRequest>();

  constructor(me: Membership, conn: RoomConnection) {
    this.#me = me;
    this.#toggle.addEventListener('change', () => void this.#switch(this.#toggle.checked));
    conn.socket.on('stage:requested', (r) => {
      this.#pending.set(r.userId, r);
      this.#renderRequests();
    });
    this.#rtmpStart.addEventListener('click', () => void this.#startRtmp());
    this.#rtmpStop.addEventListener('click', () => void this.#stopRtmp());
    this.element = h(
      'fieldset',
      { class: 'broadcast' },
      h('legend', {}, 'Stage and audience'),
      h('label', { class: 'toggle', htmlFor: 'broadcast-mode' }, this.#toggle, ' Broadcast: hosts and remixers stay on stage, listeners hear a stream that carries thousands (a few seconds behind)'),
      this.#hint,
      this.#listenLink,
      h('h3', {}, 'Asking to join the stage'),
      this.#requests,
      h('h3', {}, 'Send the room to a streaming platform (RTMP)'),
      h('div', { class: 'field' }, h('label', { htmlFor: 'rtmp-url' }, 'Ingest address'), this.#rtmpUrl),
      h('div', { class: 'field' }, h('label', { htmlFor: 'rtmp-key' }, 'Stream key (kept only while the room lasts, never shown again)'), this.#rtmpKey),
      h('div', { class: 'inline' }, this.#rtmpStart, this.#rtmpStop),
      this.#rtmpState,
    );
    this.#renderRequests();
  }

  /** The rules say whether the room broadcasts (from any host, any node). */
  update(enabled: boolean): void {
    if (!this.#toggle.disabled) this.#toggle.checked = enabled;
    if (enabled === this.#enabled) return;
    this.#enabled = enabled;
    this.#hint.textContent = enabled ? 'Broadcasting: listeners hear the room’s stream. New listeners join it directly.' : 'A party: everyone hears the live mix over WebRTC (best for up to a few hundred people).';
    if (enabled) void this.#showListenLink();
    else {
      this.#listenLink.replaceChildren();
      this.#pending.clear();
      this.#renderRequests();
      // Switched off by the server itself (its encoder kept failing): say why.
      void api
        .broadcast(this.#me.roomId, this.#me.token)
        .then((status) => {
          if (status.failure && !this.#enabled) this.#hint.textContent = `The broadcast stopped: ${status.failure}. Everyone hears the live mix over WebRTC again.`;
        })
        .catch(() => {});
    }
  }

  /** Starts following the RTMP state (the host panel is shown). */
  open(): void {
    if (this.#rtmpTimer) return;
    void this.#pollRtmp();
    this.#rtmpTimer = setInterval(() => void this.#pollRtmp(), RTMP_POLL_MS);
  }

  close(): void {
    if (this.#rtmpTimer) clearInterval(this.#rtmpTimer);
    this.#rtmpTimer = null;
  }

  async #switch(on: boolean): Promise<void> {
    this.#toggle.disabled = true;
    try {
      const status = await api.setBroadcast(this.#me.roomId, this.#me.token, on);
      this.update(status.enabled);
    } catch (err) {
      this.#toggle.checked = !on;
      this.#hint.textContent = `Broadcast mode could not be switched. ${apiErrorWords(err)}`;
    } finally {
      this.#toggle.disabled = false;
    }
  }

  async #showListenLink(): Promise<void> {
    try {
      const status = await api.broadcast(this.#me.roomId, this.#me.token);
      if (!status.playlist) return;
      const url = new URL(status.playlist, location.origin).href;
      this.#listenLink.replaceChildren(
        h('p', { class: 'hint' }, 'Listen link: any HLS player (VLC, Safari, a CDN) can play this. Whoever has it can listen.'),
        h('input', { type: 'text', readOnly: true, value: url, class: 'listen-url', 'aria-label': 'Listen link', onclick: (ev: Event) => (ev.target as HTMLInputElement).select() }),
      );
    } catch (err) {
      this.#listenLink.textContent = `The listen link could not be read. ${apiErrorWords(err)}`;
    }
  }

  #renderRequests(): void {
    if (this.#pending.size === 0) {
      this.#requests.replaceChildren(h('li', { class: 'hint' }, 'Nobody is asking just now.'));
      return;
    }
    this.#requests.replaceChildren(
      ...[...this.#pending.values()].map((r) => {
        const accept = h('button', { type: 'button' }, 'Bring on stage');
        const dismiss = h('button', { type: 'button', class: 'quiet' }, 'Not now');
        accept.addEventListener('click', () => {
          accept.disabled = true;
          api
            .setRole(this.#me.roomId, this.#me.token, r.userId, 'remixer')
            .then(() => {
              this.#pending.delete(r.userId);
              this.#renderRequests();
            })
            .catch((err: unknown) => {
              accept.disabled = false;
              this.#hint.textContent = `${r.name} could not be brought on stage. ${apiErrorWords(err)}`;
            });
        });
        dismiss.addEventListener('click', () => {
          this.#pending.delete(r.userId);
          this.#renderRequests();
        });
        return h('li', { 'data-user': r.userId }, h('b', {}, r.name), ' asks to join the stage ', accept, dismiss);
      }),
    );
  }

  async #startRtmp(): Promise<void> {
    const url = this.#rtmpUrl.value.trim();
    const key = this.#rtmpKey.value.trim();
    if (!url || !key) {
      this.#rtmpState.textContent = 'Give the platform’s ingest address and your stream key.';
      return;
    }
    this.#rtmpStart.disabled = true;
    try {
      this.#showRtmp(await api.startRtmp(this.#me.roomId, this.#me.token, url, key));
      this.#rtmpKey.value = '';
    } catch (err) {
      this.#rtmpState.textContent = `The push could not start. ${apiErrorWords(err)}`;
    } finally {
      this.#rtmpStart.disabled = false;
    }
  }

  async #stopRtmp(): Promise<void> {
    this.#rtmpStop.disabled = true;
    try {
      this.#showRtmp(await api.stopRtmp(this.#me.roomId, this.#me.token));
    } catch (err) {
      this.#rtmpState.textContent = `The push could not be stopped. ${apiErrorWords(err)}`;
    } finally {
      this.#rtmpStop.disabled = false;
    }
  }

  async #pollRtmp(): Promise<void> {
    try {
      this.#showRtmp(await api.rtmp(this.#me.roomId, this.#me.token));
    } catch {
      // A missed poll: the next one says.
    }
  }

  #showRtmp(status: RtmpStatus): void {
    const push = status.push;
    const running = push !== null && push.status !== 'stopped' && push.status !== 'failed';
    this.#rtmpStop.hidden = !running;
    this.#rtmpStart.hidden = running;
    if (!push) {
      this.#rtmpState.textContent = 'Not sending anywhere.';
      return;
    }
    const retry = push.nextRetryInMs !== null ? ` (next try in ${Math.ceil(push.nextRetryInMs / 1000)} s)` : '';
    const error = push.lastError ? ` Last problem: ${push.lastError}.` : '';
    this.#rtmpState.dataset['status'] = push.status;
    this.#rtmpState.textContent = `${push.target}: ${STATUS_WORDS[push.status] ?? push.status}${retry}.${error}`;
  }
}

/** What a listener in the audience sees: the delay, and a way onto the stage. */
export class AudienceBar {
  readonly element: HTMLElement;
  readonly #conn: RoomConnection;
  readonly #words = h('span', { class: 'audience-words' });
  readonly #ask = h('button', { type: 'button' }, 'Join the stage');
  readonly #result = h('span', { class: 'hint', role: 'status' });

  constructor(conn: RoomConnection) {
    this.#conn = conn;
    this.#ask.addEventListener('click', () => void this.#askToJoin());
    this.element = h('div', { class: 'audience-bar', hidden: true, role: 'status' }, this.#words, this.#ask, this.#result);
  }

  /** In the audience or not; the delay (ms) while the broadcast plays. */
  update(inAudience: boolean, delayMs: number | null): void {
    this.element.hidden = !inAudience;
    if (!inAudience) {
      this.#result.textContent = '';
      return;
    }
    const text =
      delayMs === null
        ? 'You are in the audience: the room broadcasts. Start the audio to hear it.'
        : `You are in the audience: you hear the stage about ${Math.max(1, Math.round(delayMs / 1000))} s behind.`;
    if (this.#words.textContent !== text) this.#words.textContent = text;
  }

  async #askToJoin(): Promise<void> {
    this.#ask.disabled = true;
    try {
      const r = await this.#conn.socket.timeout(10_000).emitWithAck('stage:request', {});
      this.#result.textContent = r.ok ? 'The hosts have been asked. If they accept, you move onto the stage and can change the mix.' : r.refusal.message;
    } catch {
      this.#result.textContent = 'The request could not be sent; try again.';
    } finally {
      setTimeout(() => {
        this.#ask.disabled = false;
      }, 10_000);
    }
  }
}
