// Mocha root hooks: whatever the whole run shares is removed at its end.
import { removeDemoTemplate } from './demo-data.ts';
import { stopSharedNginxRtmp } from './nginx-rtmp.ts';
import { stopSharedPostgres } from './postgres.ts';
import { stopSharedS3 } from './s3.ts';

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await removeDemoTemplate();
    await stopSharedPostgres();
    await stopSharedS3();
    await stopSharedNginxRtmp();
  },
};
