// SrtpGcmSender (the embedded SFU's AEAD_AES_128_GCM for outgoing SRTP, RFC 7714)
// gives exactly the bytes of OpenSSL's aes-128-gcm through createCipheriv, with
// the IV built as RFC 7714 §8.1 says: header lengths with and without CSRCs,
// payloads of every length around the block size, sequence numbers and rollover
// counters at their edges, raw keys and KeyObjects, and one sender reused for
// many packets (its buffers carry nothing over).
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { SrtpGcmSender } from '../../media/sfu/srtp-gcm.ts';

function reference(key: Buffer, salt: Buffer, header: Buffer, payload: Buffer, ssrc: number, seq: number, roc: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(ssrc, 2);
  iv.writeUInt32BE(roc, 6);
  iv.writeUInt16BE(seq, 10);
  for (let i = 0; i < 12; i++) iv[i]! ^= salt[i]!;
  const cipher = createCipheriv('aes-128-gcm', key, iv);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(payload), cipher.final()]);
  return Buffer.concat([header, body, cipher.getAuthTag()]);
}

describe('SrtpGcmSender (AES-128-GCM SRTP without a cipher per packet)', () => {
  it('matches createCipheriv(aes-128-gcm) byte for byte', () => {
    let checked = 0;
    for (let k = 0; k < 40; k++) {
      const key = randomBytes(16);
      const salt = randomBytes(12);
      const sender = new SrtpGcmSender(k % 2 ? createSecretKey(key) : key, salt);
      for (const payloadLength of [1, 15, 16, 17, 31, 32, 33, 160, 255, 1200]) {
        for (const [seq, roc] of [[0, 0], [0xffff, 0], [0x1234, 1], [0x8000, 0xffffffff], [k * 977, k * 31337]] as const) {
          const header = randomBytes(12 + 4 * (k % 3));
          const payload = randomBytes(payloadLength);
          const ssrc = randomBytes(4).readUInt32BE();
          const got = sender.encryptRtp(header, payload, ssrc, seq, roc);
          expect(got.equals(reference(key, salt, header, payload, ssrc, seq, roc)), `payload ${payloadLength}, seq ${seq}, roc ${roc}`).to.equal(true);
          checked++;
        }
      }
    }
    expect(checked).to.equal(40 * 10 * 5);
  });

  it('uses the first 12 bytes of a longer salt (werift derives 14) and refuses a shorter one', () => {
    const key = randomBytes(16);
    const salt = randomBytes(14);
    const header = randomBytes(12);
    const payload = randomBytes(100);
    const got = new SrtpGcmSender(key, salt).encryptRtp(header, payload, 7, 8, 9);
    expect(got.equals(reference(key, salt.subarray(0, 12), header, payload, 7, 8, 9))).to.equal(true);
    expect(() => new SrtpGcmSender(key, randomBytes(11))).to.throw(/salt must be at least 12 bytes/);
  });
});
