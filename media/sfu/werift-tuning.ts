// One measured hot spot of werift's SRTP: every packet's createCipheriv /
// createHmac is given the raw session key, which Node turns into a KeyObject
// each time (getKeyObjectSlots/prepareSecretKey were ~10% of the embedded SFU
// thread's profile with 25 listeners). Swapping the cipher's keys for KeyObjects
// made once gives the same bytes for less work. werift's internals are not its
// API: the swap checks the shape it expects and leaves anything else alone.
import { createSecretKey, type KeyObject } from 'node:crypto';
import type { RTCPeerConnection } from 'werift';

const KEY_FIELDS = ['srtpSessionKey', 'srtcpSessionKey', 'srtpSessionAuthTag', 'srtcpSessionAuthTag'] as const;

/** Call once the peer is connected (SRTP started). Returns whether anything was swapped. */
export function cacheSrtpKeys(pc: RTCPeerConnection): boolean {
  let swapped = false;
  for (const transport of pc.dtlsTransports) {
    const session = transport.srtp as unknown as { localContext?: { cipher?: Record<string, unknown> }; remoteContext?: { cipher?: Record<string, unknown> } } | undefined;
    for (const context of [session?.localContext, session?.remoteContext]) {
      const cipher = context?.cipher;
      if (!cipher) continue;
      for (const field of KEY_FIELDS) {
        const value = cipher[field];
        if (Buffer.isBuffer(value) && value.length > 0) {
          cipher[field] = createSecretKey(value) satisfies KeyObject;
          swapped = true;
        }
      }
    }
  }
  return swapped;
}
