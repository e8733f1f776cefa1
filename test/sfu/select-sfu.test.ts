// Which SFU the server gets: mediasoup only when its worker binary is there and
// starts; the embedded one otherwise, with the reason for the start-up log.
import { expect } from 'chai';
import { selectSfu, type SelectedSfu } from '../../media/sfu/select-sfu.ts';

describe('selectSfu', function () {
  this.timeout(30_000);
  let selected: SelectedSfu | null = null;
  afterEach(async () => {
    await selected?.sfu.close();
    selected = null;
  });

  it('uses the embedded SFU when no mediasoup worker binary is given', async () => {
    selected = await selectSfu({});
    expect(selected.kind).to.equal('embedded');
    expect(selected.sfu.kind).to.equal('embedded');
    expect(selected.reason).to.match(/MEDIASOUP_WORKER_BIN/);
  });

  it('uses the embedded SFU when the given path is not an executable file', async () => {
    selected = await selectSfu({ mediasoupWorkerBin: '/nonexistent/mediasoup-worker' });
    expect(selected.kind).to.equal('embedded');
    expect(selected.reason).to.match(/not an executable file/);
  });

  it('falls back to the embedded SFU, saying why, when the binary is no mediasoup worker', async () => {
    // Exercises the lazy mediasoup path (its JavaScript loads without a worker binary installed).
    selected = await selectSfu({ mediasoupWorkerBin: '/bin/false', mediasoup: { numWorkers: 1 } });
    expect(selected.kind).to.equal('embedded');
    expect(selected.reason).to.match(/failed to start/);
  });
});
