// A room's chat, kept with the room in the store: the newest CHAT_HISTORY_KEEP
// messages, so that a member who reloads or joins late reads what was said, a restart
// keeps it, and in scale-out every node reads the same. Only messages the room
// accepted (moderated, within the limits) ever reach it.
import { CHAT_HISTORY_KEEP, type ChatMessage } from '../../shared/socket-events.ts';
import type { Store } from '../store/store.ts';

export class ChatHistory {
  readonly #store: Store;
  readonly #keep: number;

  constructor(store: Store, keep: number = CHAT_HISTORY_KEEP) {
    this.#store = store;
    this.#keep = keep;
  }

  /** Keeps an accepted message (before the room hears it, so that a reload right after finds it). */
  add(roomId: string, message: ChatMessage): Promise<void> {
    return this.#store.addChatMessage(roomId, message, this.#keep);
  }

  /** The room's kept messages, oldest first. */
  recent(roomId: string): Promise<ChatMessage[]> {
    return this.#store.listChatMessages(roomId, this.#keep);
  }
}
