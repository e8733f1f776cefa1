// The payment provider behind purchases, and the built-in sandbox one.
//
// The interface is the shape real card processors share: a charge made once per
// idempotency key (a retry after a crash finds the same charge instead of making
// a second), settled asynchronously and announced by a signed webhook, and a
// lookup to ask what became of a charge, which is the truth: a webhook only says
// "look again" (it may come late, twice, out of order, or never). A succeeded
// charge may later be refunded. The sandbox keeps its charges as files under
// DATA_DIR/sandbox-payments (it stands for a system outside this process: what
// it has charged survives our crashes), settles them after a short delay, and
// POSTs signed webhooks to the server, retrying until they are accepted.
//
// Test cards: 4242 4242 4242 4242 succeeds; 4000 0000 0000 0002 is declined
// (card_declined); 4000 0000 0000 9995 is declined (insufficient_funds); a
// number that fails the Luhn check is refused at once (invalid_number).
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.ts';

/** pending → succeeded | declined, decided once; succeeded → refunded. */
export type PaymentStatus = 'pending' | 'succeeded' | 'declined' | 'refunded';

export interface Payment {
  id: string;
  status: PaymentStatus;
  amountCents: number;
  currency: string;
  declineCode?: string;
}

/** What a webhook names; its type is informative only (the charge is read from the provider). */
export interface WebhookEvent {
  id: string;
  /** payment.succeeded, payment.declined, payment.refunded, or a type this server does not know. */
  type: string;
  paymentId: string;
}

export interface PaymentProvider {
  readonly name: string;
  /** Charges once per key; a second call with the same key answers the first charge. */
  charge(request: { idempotencyKey: string; amountCents: number; currency: string; card: string; description: string }): Promise<Payment>;
  get(paymentId: string): Promise<Payment | null>;
  /** The charge made under an idempotency key, if any (how a crashed caller learns whether it charged). */
  find(idempotencyKey: string): Promise<Payment | null>;
  /** Refunds a succeeded charge in full (a refunded one answers as it is); announced by a webhook like the rest. */
  refund(paymentId: string): Promise<Payment>;
  /** Checks the webhook's signature and freshness; throws WebhookError when it does not hold. */
  parseWebhook(rawBody: Buffer, signatureHeader: string | undefined): WebhookEvent;
  close(): Promise<void>;
}

export class WebhookError extends Error {
  override readonly name = 'WebhookError';
}

export class PaymentRefusedError extends Error {
  override readonly name = 'PaymentRefusedError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export const SIGNATURE_HEADER = 'remixroom-signature';
const SIGNATURE_TOLERANCE_SEC = 300;

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, as the sandbox signs (and a test may forge). */
export function signWebhook(secret: string, body: string, timestampSec: number): string {
  const mac = crypto.createHmac('sha256', secret).update(`${timestampSec}.${body}`).digest('hex');
  return `t=${timestampSec},v1=${mac}`;
}

export function verifyWebhookSignature(secret: string, rawBody: Buffer, header: string | undefined, nowSec: number): void {
  if (!header) throw new WebhookError(`missing ${SIGNATURE_HEADER} header`);
  const parts = new Map(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1') ?? '';
  if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(v1)) throw new WebhookError('malformed signature header');
  if (Math.abs(nowSec - t) > SIGNATURE_TOLERANCE_SEC) throw new WebhookError('the signature is too old or from the future');
  const expected = crypto.createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  if (!crypto.timingSafeEqual(expected, Buffer.from(v1, 'hex'))) throw new WebhookError('the signature does not match');
}

interface SandboxCharge extends Payment {
  idempotencyKey: string;
  description: string;
  createdAtMs: number;
  settleAtMs: number;
  /** The decision the card makes, applied when the charge settles. */
  outcome: 'succeeded' | 'declined';
  /** Whether the event of the charge's latest change (webhookEventId) was accepted. */
  webhookDelivered: boolean;
  webhookEventId: string;
}

const TEST_CARDS: Record<string, { outcome: 'succeeded' | 'declined'; declineCode?: string }> = {
  '4242424242424242': { outcome: 'succeeded' },
  '4000000000000002': { outcome: 'declined', declineCode: 'card_declined' },
  '4000000000009995': { outcome: 'declined', declineCode: 'insufficient_funds' },
};

export interface SandboxOptions {
  dir: string;
  webhookSecret: string;
  /** Where webhooks go (the server's POST /api/webhooks/payments); resolved when the first is sent. */
  webhookUrl: () => string;
  log: Logger;
  /** How long a charge stays pending. Default 300 ms. */
  settleMs?: number;
}

export class SandboxPayments implements PaymentProvider {
  readonly name = 'sandbox';
  readonly #opts: SandboxOptions;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Each charge's file is changed by one step at a time (settle, refund, mark delivered). */
  readonly #writing = new Map<string, Promise<unknown>>();
  #held = false;
  #closed = false;

  constructor(opts: SandboxOptions) {
    this.#opts = opts;
    fs.mkdirSync(opts.dir, { recursive: true });
  }

  /** Settles what is due and re-sends webhooks not yet accepted (after a restart). */
  async resume(): Promise<void> {
    for (const file of await fsp.readdir(this.#opts.dir)) {
      if (!file.endsWith('.json')) continue;
      const charge = await this.#read(file.slice(0, -5));
      if (charge && (charge.status === 'pending' || !charge.webhookDelivered)) this.#schedule(charge.id, Math.max(0, charge.settleAtMs - Date.now()));
    }
  }

  async find(idempotencyKey: string): Promise<Payment | null> {
    return this.get(paymentIdOf(idempotencyKey));
  }

  async charge(request: { idempotencyKey: string; amountCents: number; currency: string; card: string; description: string }): Promise<Payment> {
    const id = paymentIdOf(request.idempotencyKey);
    const existing = await this.#read(id);
    if (existing) return publicPayment(existing);
    const number = request.card.replace(/[\s-]/g, '');
    if (!/^\d{12,19}$/.test(number) || !luhn(number)) throw new PaymentRefusedError('invalid_number', 'the card number is not valid');
    const card = TEST_CARDS[number] ?? { outcome: 'declined' as const, declineCode: 'card_declined' };
    const now = Date.now();
    const charge: SandboxCharge = {
      id,
      status: 'pending',
      amountCents: request.amountCents,
      currency: request.currency,
      idempotencyKey: request.idempotencyKey,
      description: request.description,
      createdAtMs: now,
      settleAtMs: now + (this.#opts.settleMs ?? 300),
      outcome: card.outcome,
      ...(card.declineCode ? { declineCode: card.declineCode } : {}),
      webhookDelivered: false,
      webhookEventId: newEventId(),
    };
    await this.#write(charge);
    this.#schedule(id, this.#opts.settleMs ?? 300);
    return publicPayment(charge);
  }

  async get(paymentId: string): Promise<Payment | null> {
    if (!PAYMENT_ID.test(paymentId)) return null;
    const charge = await this.#read(paymentId);
    if (!charge) return null;
    // Asked after it was due (e.g. by a server that crashed meanwhile): it has settled.
    if (charge.status === 'pending' && Date.now() >= charge.settleAtMs) return publicPayment((await this.#settle(paymentId)) ?? charge);
    return publicPayment(charge);
  }

  /**
   * Refunds a succeeded charge and announces it with a signed `payment.refunded`
   * webhook (retried like the others). The sandbox's stand-in for a refund made
   * in a provider's dashboard: tests call it, and so can a person (on
   * `server.payments`, e.g. from a REPL).
   */
  async refund(paymentId: string): Promise<Payment> {
    if (!PAYMENT_ID.test(paymentId)) throw new PaymentRefusedError('no_such_charge', 'no such charge');
    const charge = await this.#change(paymentId, (c) => {
      if (c.status === 'pending' && Date.now() >= c.settleAtMs) c.status = c.outcome;
      if (c.status === 'refunded') return false;
      if (c.status !== 'succeeded') throw new PaymentRefusedError('not_refundable', `a ${c.status} charge cannot be refunded`);
      c.status = 'refunded';
      c.webhookDelivered = false;
      c.webhookEventId = newEventId();
      return true;
    });
    if (!charge) throw new PaymentRefusedError('no_such_charge', 'no such charge');
    if (!charge.webhookDelivered) this.#schedule(paymentId, 0);
    return publicPayment(charge);
  }

  /**
   * A test hook, as a provider's dashboard can pause an endpoint: while held, no
   * webhook is sent (each keeps being retried), so that only lookups tell what
   * happened; released, the late ones go out within a moment.
   */
  holdWebhooks(held: boolean): void {
    this.#held = held;
  }

  parseWebhook(rawBody: Buffer, signatureHeader: string | undefined): WebhookEvent {
    verifyWebhookSignature(this.#opts.webhookSecret, rawBody, signatureHeader, Math.floor(Date.now() / 1000));
    let body: unknown;
    try {
      body = JSON.parse(rawBody.toString('utf8'));
    } catch {
      throw new WebhookError('the body is not JSON');
    }
    const e = body as Partial<WebhookEvent>;
    if (typeof e.id !== 'string' || typeof e.type !== 'string' || typeof e.paymentId !== 'string') {
      throw new WebhookError('not a payment event');
    }
    return { id: e.id, type: e.type, paymentId: e.paymentId };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  #schedule(id: string, delayMs: number, attempt = 0): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void this.#process(id, attempt);
    }, delayMs);
    this.#timers.add(timer);
  }

  async #process(id: string, attempt: number): Promise<void> {
    if (this.#closed) return;
    let charge = await this.#read(id);
    if (!charge) return;
    if (charge.status === 'pending') charge = (await this.#settle(id)) ?? charge;
    if (charge.webhookDelivered) return;
    if (this.#held) {
      this.#schedule(id, 250, attempt);
      return;
    }
    // The event names the charge's latest change, like a provider's (which the server reads back anyway).
    const event = {
      id: charge.webhookEventId,
      type: `payment.${charge.status}`,
      paymentId: charge.id,
      ...(charge.status === 'declined' && charge.declineCode ? { declineCode: charge.declineCode } : {}),
    };
    const body = JSON.stringify(event);
    try {
      const res = await fetch(this.#opts.webhookUrl(), {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signWebhook(this.#opts.webhookSecret, body, Math.floor(Date.now() / 1000)) },
        body,
        signal: AbortSignal.timeout(5000),
      });
      if (!res.ok) throw new Error(`answered ${res.status}`);
      // Unless the charge changed meanwhile (a refund): its own event is still to go.
      await this.#change(id, (c) => {
        if (c.webhookEventId !== event.id || c.webhookDelivered) return false;
        c.webhookDelivered = true;
        return true;
      });
    } catch (err) {
      // Retried with backoff, as providers do; a restart resumes it.
      const delay = Math.min(30_000, 250 * 2 ** attempt);
      this.#opts.log.warn({ err: (err as Error).message, paymentId: id, attempt }, 'sandbox webhook not accepted; retrying');
      this.#schedule(id, delay, attempt + 1);
    }
  }

  /** The charge as settled (null when it is gone). */
  #settle(id: string): Promise<SandboxCharge | null> {
    return this.#change(id, (c) => {
      if (c.status !== 'pending') return false;
      c.status = c.outcome;
      return true;
    });
  }

  /** Reads, changes and writes a charge, one change per charge at a time; `change` answers whether to write. */
  #change(id: string, change: (charge: SandboxCharge) => boolean): Promise<SandboxCharge | null> {
    const run = async (): Promise<SandboxCharge | null> => {
      const charge = await this.#read(id);
      if (charge && change(charge)) await this.#write(charge);
      return charge;
    };
    const next = (this.#writing.get(id) ?? Promise.resolve()).then(run, run);
    const tail = next.catch(() => undefined);
    this.#writing.set(id, tail);
    void tail.then(() => this.#writing.get(id) === tail && this.#writing.delete(id));
    return next;
  }

  async #read(id: string): Promise<SandboxCharge | null> {
    try {
      return JSON.parse(await fsp.readFile(path.join(this.#opts.dir, `${id}.json`), 'utf8')) as SandboxCharge;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async #write(charge: SandboxCharge): Promise<void> {
    const file = path.join(this.#opts.dir, `${charge.id}.json`);
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(charge));
    await fsp.rename(tmp, file);
  }
}

const PAYMENT_ID = /^pay_[0-9a-f]{24}$/;

function newEventId(): string {
  return `evt_${crypto.randomBytes(12).toString('hex')}`;
}

function paymentIdOf(idempotencyKey: string): string {
  return `pay_${crypto.createHash('sha256').update(`sandbox\n${idempotencyKey}`).digest('hex').slice(0, 24)}`;
}

function publicPayment(c: SandboxCharge): Payment {
  return { id: c.id, status: c.status, amountCents: c.amountCents, currency: c.currency, ...(c.status === 'declined' && c.declineCode ? { declineCode: c.declineCode } : {}) };
}

function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}
