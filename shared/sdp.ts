// Small SDP edits both ends of the embedded path need. No Node imports: the
// browser side bundles this file too.

const CANDIDATE = /^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ /;

/** Keeps only the a=candidate lines whose address passes `keep`. */
export function filterCandidates(sdp: string, keep: (address: string) => boolean): string {
  return splitLines(sdp)
    .filter((line) => {
      const match = CANDIDATE.exec(line);
      return !match || keep(match[1]!);
    })
    .join('\r\n');
}

/**
 * Drops the browser's mDNS (`*.local`) candidates. A server cannot resolve them
 * (and werift would multicast on every interface trying to); the browser's
 * checks towards the server's candidate teach the server its address instead
 * (a peer-reflexive candidate), as with any ICE-lite SFU.
 */
export function dropMdnsCandidates(sdp: string): string {
  return filterCandidates(sdp, (address) => !address.toLowerCase().endsWith('.local'));
}

/** The Opus payload types an SDP maps (a=rtpmap:PT opus/48000/2). */
export function opusPayloadTypes(sdp: string): number[] {
  const types: number[] = [];
  for (const line of splitLines(sdp)) {
    const match = /^a=rtpmap:(\d+) opus\/48000/i.exec(line);
    if (match) types.push(Number(match[1]));
  }
  return types;
}

/**
 * Says `stereo=1; sprop-stereo=1` on every Opus fmtp line. Chromium writes its
 * answer without `stereo=1` and then decodes to mono even when the offer said
 * stereo; the receiver's own description is what sets its decoder's channels.
 */
export function withOpusStereo(sdp: string): string {
  const opus = new Set(opusPayloadTypes(sdp));
  return splitLines(sdp)
    .map((line) => {
      const match = /^a=fmtp:(\d+) (.*)$/.exec(line);
      if (!match || !opus.has(Number(match[1]))) return line;
      const params = match[2]!
        .split(';')
        .map((p) => p.trim())
        .filter((p) => p && !/^(stereo|sprop-stereo)=/.test(p));
      return `a=fmtp:${match[1]} ${[...params, 'stereo=1', 'sprop-stereo=1'].join(';')}`;
    })
    .join('\r\n');
}

/** Whether the first audio m-section was accepted (a non-zero port). */
export function audioAccepted(sdp: string): boolean {
  const line = splitLines(sdp).find((l) => l.startsWith('m=audio '));
  return line !== undefined && !/^m=audio 0 /.test(line);
}

function splitLines(sdp: string): string[] {
  const lines = sdp.split(/\r?\n/);
  // Keep the trailing CRLF that SDP requires.
  return lines;
}
