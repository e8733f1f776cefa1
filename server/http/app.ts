import crypto from 'node:crypto';
import express, { type ErrorRequestHandler, type Request } from 'express';
import { pinoHttp } from 'pino-http';
import type { ApiErrorBody } from '../../shared/errors.ts';
import type { Catalog } from '../catalog/catalog.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { HttpError, storeErrorToHttp } from './http-error.ts';
import { healthRoutes, type Readiness } from './health-routes.ts';
import { releaseRoutes } from './release-routes.ts';
import { visualModelRoutes } from './visual-model-routes.ts';
import type { VisualModels } from '../catalog/visual-models.ts';
import { clipRoutes, type ClipRoutesDeps } from './clip-routes.ts';
import { orderRoutes, paymentWebhookRoute, type OrderRoutesDeps } from './order-routes.ts';
import { verifyRoute } from './verify-routes.ts';
import type { VerifyDeps } from '../clips/verify.ts';
import { broadcastRoutes, type BroadcastRoutesDeps } from './broadcast-routes.ts';
import { clientRoutes } from './client-routes.ts';
import { roomRoutes, type RoomRoutesDeps } from './room-routes.ts';
import { takeRoutes } from './take-routes.ts';
import { memberThingsRoutes } from './member-things-routes.ts';
import type { Limits } from '../limits/limits.ts';

export interface AppDeps {
  log: Logger;
  metrics: Metrics;
  catalog: Catalog;
  readiness: Readiness;
  rooms: RoomRoutesDeps;
  clips: ClipRoutesDeps;
  orders: OrderRoutesDeps;
  verify: VerifyDeps;
  limits: Limits;
  /** A room's broadcast (HLS, RTMP); without it those routes are not mounted. */
  broadcast?: BroadcastRoutesDeps;
  /** The releases' visual models (records, generated textures); without it those routes are not mounted. */
  visualModels?: VisualModels;
}

const REQUEST_ID = /^[\w.-]{1,64}$/;
/** A broadcast's playlists and media (server/http/broadcast-routes.ts). */
const HLS_PATH = /^\/api\/rooms\/[^/]+\/hls\//;

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // The same proxies the limits believe (loopback, and TRUSTED_PROXIES).
  app.set('trust proxy', (address: string) => deps.limits.trustsProxy(address));

  app.use(
    pinoHttp({
      logger: deps.log,
      genReqId(req, res) {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : crypto.randomUUID();
        res.setHeader('x-request-id', id);
        return id;
      },
      // Probes and scrapes would drown the log, and so would a broadcast's audience (a few requests a
      // second each, carrying the room's listen key): HLS requests are counted in /metrics, not logged.
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' || HLS_PATH.test(req.url ?? '') },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
    }),
  );

  app.use((req, res, next) => {
    const end = deps.metrics.httpDuration.startTimer();
    res.on('finish', () => {
      const route = routeLabel(req);
      end({ method: req.method, route });
      deps.metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  });

  // Before the JSON parser: its signature covers the raw bytes.
  app.use('/api/webhooks/payments', paymentWebhookRoute(deps.orders));
  // A media file as the body, so before the JSON parser too.
  app.use('/api/verify', verifyRoute(deps.verify, deps.limits));
  app.use(express.json({ limit: '64kb' }));
  app.use(healthRoutes(deps));
  app.use('/api/releases', releaseRoutes(deps));
  if (deps.visualModels) app.use('/api/releases', visualModelRoutes({ models: deps.visualModels, limits: deps.limits }));
  app.use('/api/rooms', roomRoutes(deps.rooms));
  app.use('/api/rooms', takeRoutes(deps.rooms));
  if (deps.broadcast) app.use('/api/rooms', broadcastRoutes(deps.broadcast));
  app.use('/api/rooms', memberThingsRoutes({ store: deps.orders.store, signer: deps.orders.signer, limits: deps.limits, clips: deps.clips.clips, orders: deps.orders.orders }));
  app.use('/api', clipRoutes(deps.clips));
  app.use('/api/orders', orderRoutes(deps.orders));

  app.use('/api', (req) => {
    throw new HttpError('not_found', `no API route ${req.method} ${req.originalUrl.split('?')[0]}`);
  });
  app.use(clientRoutes());
  app.use(errorHandler(deps.log));
  return app;
}

/** The matched route pattern, so that ids in paths do not explode the label set. */
function routeLabel(req: Request): string {
  const route = req.route as { path?: string } | undefined;
  return route?.path ? `${req.baseUrl}${route.path}` : 'unmatched';
}

function errorHandler(log: Logger): ErrorRequestHandler {
  return (thrown: unknown, req, res, _next) => {
    const err = storeErrorToHttp(thrown);
    let status: number;
    let body: ApiErrorBody;
    if (err instanceof HttpError) {
      status = err.status;
      body = { error: { code: err.code, message: err.message, ...(err.limit ? { limit: err.limit } : {}), ...(err.retryAfterSec !== null ? { retryAfterSec: err.retryAfterSec } : {}) } };
      if (err.retryAfterSec !== null && !res.headersSent) res.setHeader('retry-after', String(err.retryAfterSec));
    } else if (isClientError(err) && !isBodyParserError(err)) {
      // Express's own refusals of a request it cannot read (e.g. a path parameter that is not valid percent-encoding).
      status = err.status;
      body = { error: { code: status === 404 ? 'not_found' : 'bad_request', message: `the request could not be read: ${err.message}` } };
    } else if (isBodyParserError(err)) {
      status = err.status;
      const code = err.type === 'entity.too.large' ? 'payload_too_large' : 'invalid_body';
      body = { error: { code, message: err.type === 'entity.too.large' ? 'the request body is too large' : `the request body is not valid JSON: ${err.message}` } };
    } else {
      status = 500;
      body = { error: { code: 'internal', message: 'something went wrong on our side; it has been logged' } };
      (req.log ?? log).error({ err }, 'unhandled error in request');
    }
    if (res.headersSent) return res.end();
    res.status(status).json(body);
  };
}

/** An error express or its parts raised for the request itself: a 4xx status (http-errors, or the router's URIError). */
function isClientError(err: unknown): err is { status: number; message: string } {
  if (typeof err !== 'object' || err === null) return false;
  const status = (err as { status?: unknown }).status;
  return typeof status === 'number' && status >= 400 && status < 500 && ((err as { expose?: unknown }).expose === true || err instanceof URIError);
}

function isBodyParserError(err: unknown): err is { status: number; type: string; message: string } {
  return typeof err === 'object' && err !== null && 'type' in err && 'status' in err && typeof (err as { status: unknown }).status === 'number';
}
