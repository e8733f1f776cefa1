// Which user writes under each Yjs client id of a room.
//
// Yjs client ids are chosen by the clients and are not secret: every update carries its
// author's id. A member who writes under someone else's id, at that client's next clock,
// makes the server keep its struct and drop the owner's own edit as a duplicate whenever
// the two cross; the owner's document is then corrupted for good. And an awareness state
// under someone else's id speaks for them. So the first user to announce an id (awareness)
// or to write its first struct (clock 0) owns it, and nobody else may write under it.
//
// The room manager keeps a room's owners across its loads, in this process, for a while after
// it unloads. A restart of the process, or another node in scale-out, starts with none: an id
// is then free until its owner comes back, and whoever writes under it first owns it.

/** The owner of the server's own client ids (the room's document and the guard's shadow). */
export const SERVER_AUTHOR = '\u0000server';
/** Ids remembered per user: a stock client takes a new one on every page load. */
const MAX_IDS_PER_USER = 16;

export class ClientOwners {
  readonly #owners = new Map<number, string>();
  /** Oldest first. */
  readonly #idsOf = new Map<string, number[]>();

  ownerOf(clientId: number): string | undefined {
    return this.#owners.get(clientId);
  }

  /** Whether `userId` may write or speak under `clientId`: it owns it, or nobody does. */
  mayUse(clientId: number, userId: string): boolean {
    const owner = this.#owners.get(clientId);
    return owner === undefined || owner === userId;
  }

  /** Binds a free id to `userId`. False when the id belongs to someone else. */
  claim(clientId: number, userId: string): boolean {
    const owner = this.#owners.get(clientId);
    if (owner !== undefined) return owner === userId;
    this.#owners.set(clientId, userId);
    const ids = this.#idsOf.get(userId) ?? [];
    ids.push(clientId);
    this.#idsOf.set(userId, ids);
    if (userId !== SERVER_AUTHOR && ids.length > MAX_IDS_PER_USER) this.#owners.delete(ids.shift()!);
    return true;
  }

  /** Frees an id that nobody will write under again. */
  release(clientId: number): void {
    const owner = this.#owners.get(clientId);
    if (owner === undefined) return;
    this.#owners.delete(clientId);
    const ids = this.#idsOf.get(owner);
    const at = ids?.indexOf(clientId) ?? -1;
    if (ids && at >= 0) ids.splice(at, 1);
  }

  get size(): number {
    return this.#owners.size;
  }

  clear(): void {
    this.#owners.clear();
    this.#idsOf.clear();
  }
}
