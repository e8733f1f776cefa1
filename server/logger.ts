import { pino, type Logger } from 'pino';
import type { Config } from './config.ts';

export type { Logger };

/** The process's root logger; rooms and sessions take children of it ({ roomId, sessionId }). */
export function createLogger(config: Pick<Config, 'logLevel'>, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: 'remixroom' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['req.headers.authorization', 'req.query.token', '*.token', '*.hostToken'], censor: '[redacted]' },
    },
    destination,
  );
}
