// CPU time of a child process (an encoder's ffmpeg), from /proc: what the
// encoders' stats report as their share of a core. Linux only; 0 elsewhere or
// once the process is gone.
import fs from 'node:fs';

/** The kernel's clock ticks per second (USER_HZ), 100 on Linux. */
export const CLOCK_TICKS = 100;

/** User + system CPU time of `pid` in clock ticks (0 when it cannot be read). */
export function processCpuTicks(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime: fields 14 and 15 of the whole line, 12 and 13 after the name.
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}
