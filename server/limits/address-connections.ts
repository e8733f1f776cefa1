// Connections held at once from each address, on this node: the sync endpoint's and
// socket.io's together, capped by `connections.address` (MAX_CONNECTIONS_PER_ADDRESS).
// One per process; what a connection takes it gives back when it closes.

export class AddressConnections {
  readonly max: number;
  readonly #counts = new Map<string, number>();

  constructor(max: number) {
    this.max = max;
  }

  /** Counts one more connection from `address`; false (and nothing counted) when it holds the most already. */
  acquire(address: string): boolean {
    const n = this.#counts.get(address) ?? 0;
    if (n >= this.max) return false;
    this.#counts.set(address, n + 1);
    return true;
  }

  release(address: string): void {
    const n = this.#counts.get(address) ?? 0;
    if (n <= 1) this.#counts.delete(address);
    else this.#counts.set(address, n - 1);
  }

  count(address: string): number {
    return this.#counts.get(address) ?? 0;
  }

  /** Addresses holding connections now. */
  get addresses(): number {
    return this.#counts.size;
  }
}
