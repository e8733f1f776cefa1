// Runs the SFU contract against every adapter test/support/sfu-adapters.ts
// names: the embedded one always, mediasoup whenever MEDIASOUP_WORKER_BIN is
// set (a worker that does not start: skipped with the reason, or under CI=true
// a failure).
import { EmbeddedSfu } from '../../media/sfu/embedded-sfu.ts';
import type { Sfu } from '../../media/sfu/sfu.ts';
import { MEDIASOUP_WORKER_BIN, SFU_ADAPTERS } from '../support/sfu-adapters.ts';
import { sfuContract } from './sfu.contract.ts';

const ran: string[] = [];

console.log(`    SFU contract suite: adapters ${SFU_ADAPTERS.join(' and ')}${MEDIASOUP_WORKER_BIN ? ` (worker ${MEDIASOUP_WORKER_BIN})` : ' (mediasoup not run: MEDIASOUP_WORKER_BIN not set)'}`);

describe('SFU adapters', () => {
  afterEach(function () {
    const suite = this.currentTest?.parent?.title;
    if (suite && this.currentTest?.state === 'passed' && !ran.includes(suite)) ran.push(suite);
  });
  after(() => {
    console.log(`    SFU contract suite ran against: ${ran.length ? ran.join(', ') : 'no adapter (skipped)'}`);
  });

  sfuContract({
    kind: 'embedded',
    create: ({ connectTimeoutMs }) =>
      EmbeddedSfu.create({
        connectTimeoutMs,
        // Chromium sends receiver reports every 2.5–7.5 s; a vanished page is
        // detected by their absence (or at once, by its DTLS close).
        idleTimeoutMs: 12_000,
      }),
    messageForTransport: (transportId) => ({ type: 'answer', transportId, sdp: 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n' }),
    async loadReport(sfu: Sfu) {
      const stats = await (sfu as EmbeddedSfu).workerStats();
      return { sfuThreadCpu: stats.cpuFraction, sfuThreadLoopDelayMs: stats.eventLoopDelayMs };
    },
  });

  if (SFU_ADAPTERS.includes('mediasoup')) {
    sfuContract({
      kind: 'mediasoup',
      async create({ connectTimeoutMs }) {
        const { MediasoupSfu } = await import('../../media/sfu/mediasoup-sfu.ts');
        return MediasoupSfu.create({ workerBin: MEDIASOUP_WORKER_BIN!, connectTimeoutMs, numWorkers: 2, iceConsentTimeoutS: 10, disconnectGraceMs: 2000 });
      },
      messageForTransport: (transportId) => ({
        type: 'connect',
        transportId,
        dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB' }] },
      }),
    });
  }
});
