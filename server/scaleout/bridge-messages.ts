// What nodes of one room say to each other on its Redis channel. Binary (lib0
// encoding), one message per publish:
//
//   varUint version (1) · varUint type · varString from (node id) · varString to
//   (node id, '' for every node) · the type's fields as varUint8Arrays
//
// Every node of a room receives every message on the channel, its own included;
// a node ignores what it sent and what is addressed to another node.
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';

export const BRIDGE_PROTOCOL_VERSION = 1;

export type BridgeMessage =
  /** A document update applied on `from` (members' updates were checked there). */
  | { type: 'update'; from: string; to: string; update: Uint8Array }
  /** An awareness update (y-protocols encoding). */
  | { type: 'awareness'; from: string; to: string; update: Uint8Array }
  /** Sync step 1: `from` opened the room (or lost messages) and asks for what its state vector lacks, and for awareness. */
  | { type: 'sync-request'; from: string; to: string; stateVector: Uint8Array }
  /** Sync step 2 plus the answerer's state vector, so that the asker can answer in turn. */
  | { type: 'sync-reply'; from: string; to: string; update: Uint8Array; stateVector: Uint8Array }
  /** The asker's answer to a sync-reply: what the answerer lacks. */
  | { type: 'sync-step2'; from: string; to: string; update: Uint8Array }
  /** The lease holder let go of the room (it closed there): another node may take it now. */
  | { type: 'lease-released'; from: string; to: string }
  /** The host ended the room: every node closes it. */
  | { type: 'room-ended'; from: string; to: string };

export type BridgeMessageType = BridgeMessage['type'];

const TYPES: readonly BridgeMessageType[] = ['update', 'awareness', 'sync-request', 'sync-reply', 'sync-step2', 'lease-released', 'room-ended'];

export class BridgeMessageError extends Error {
  override readonly name = 'BridgeMessageError';
}

export function encodeBridgeMessage(m: BridgeMessage): Buffer {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, BRIDGE_PROTOCOL_VERSION);
  encoding.writeVarUint(enc, TYPES.indexOf(m.type));
  encoding.writeVarString(enc, m.from);
  encoding.writeVarString(enc, m.to);
  switch (m.type) {
    case 'update':
    case 'awareness':
    case 'sync-step2':
      encoding.writeVarUint8Array(enc, m.update);
      break;
    case 'sync-request':
      encoding.writeVarUint8Array(enc, m.stateVector);
      break;
    case 'sync-reply':
      encoding.writeVarUint8Array(enc, m.update);
      encoding.writeVarUint8Array(enc, m.stateVector);
      break;
    case 'lease-released':
    case 'room-ended':
      break;
  }
  const bytes = encoding.toUint8Array(enc);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Throws BridgeMessageError for anything that is not a message of this protocol version. */
export function decodeBridgeMessage(bytes: Uint8Array): BridgeMessage {
  try {
    const dec = decoding.createDecoder(bytes);
    const version = decoding.readVarUint(dec);
    if (version !== BRIDGE_PROTOCOL_VERSION) throw new BridgeMessageError(`unknown protocol version ${version}`);
    const type = TYPES[decoding.readVarUint(dec)];
    if (!type) throw new BridgeMessageError('unknown message type');
    const from = decoding.readVarString(dec);
    const to = decoding.readVarString(dec);
    // Copies: the subscriber's buffers may share memory with later messages.
    const bytesField = () => decoding.readVarUint8Array(dec).slice();
    let m: BridgeMessage;
    switch (type) {
      case 'update':
      case 'awareness':
      case 'sync-step2':
        m = { type, from, to, update: bytesField() };
        break;
      case 'sync-request':
        m = { type, from, to, stateVector: bytesField() };
        break;
      case 'sync-reply':
        m = { type, from, to, update: bytesField(), stateVector: bytesField() };
        break;
      case 'lease-released':
      case 'room-ended':
        m = { type, from, to };
        break;
    }
    if (dec.pos !== bytes.length) throw new BridgeMessageError('trailing bytes');
    return m;
  } catch (err) {
    if (err instanceof BridgeMessageError) throw err;
    throw new BridgeMessageError(`unreadable message: ${(err as Error).message}`);
  }
}
