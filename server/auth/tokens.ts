// Room tokens: a JSON claim set signed with HMAC-SHA256 under the server's secret.
// Format: "rr1.<base64url(claims)>.<base64url(mac)>". Checked on every connection.
import crypto from 'node:crypto';
import { z } from 'zod';
import { ROLES, type Role } from '../../shared/roles.ts';

const PREFIX = 'rr1';
const MAX_TOKEN_LENGTH = 2048;

export const TokenClaimsSchema = z
  .object({
    /** A member's own token, or an invite that is exchanged for one (it cannot connect). */
    kind: z.enum(['member', 'invite']),
    room: z.string().min(1).max(64),
    /** A stable user id within the room. */
    sub: z.string().min(1).max(64),
    name: z.string().min(1).max(48),
    role: z.enum(ROLES),
    /** Issued and expiry times, seconds since the epoch. */
    iat: z.number().int(),
    exp: z.number().int(),
  })
  .strict();
export type TokenClaims = z.infer<typeof TokenClaimsSchema>;

export const TOKEN_REFUSALS = ['malformed', 'bad_signature', 'expired', 'wrong_room'] as const;
export type TokenRefusal = (typeof TOKEN_REFUSALS)[number];

export class TokenError extends Error {
  override readonly name = 'TokenError';
  readonly reason: TokenRefusal;
  constructor(reason: TokenRefusal, message: string) {
    super(message);
    this.reason = reason;
  }
}

export class TokenSigner {
  readonly #key: Buffer;
  readonly #now: () => number;

  constructor(secret: string, now: () => number = Date.now) {
    this.#key = crypto.createHash('sha256').update(`remixroom-token:${secret}`).digest();
    this.#now = now;
  }

  /** The time the signer goes by (ms since the epoch). */
  now(): number {
    return this.#now();
  }

  sign(claims: { kind?: 'member' | 'invite'; room: string; sub: string; name: string; role: Role; ttlSec: number }): string {
    const iat = Math.floor(this.#now() / 1000);
    const body: TokenClaims = {
      kind: claims.kind ?? 'member',
      room: claims.room,
      sub: claims.sub,
      name: claims.name,
      role: claims.role,
      iat,
      exp: iat + claims.ttlSec,
    };
    const payload = Buffer.from(JSON.stringify(TokenClaimsSchema.parse(body))).toString('base64url');
    return `${PREFIX}.${payload}.${this.#mac(payload)}`;
  }

  /**
   * The claims of a genuine, unexpired token of `kind` for `room`; otherwise TokenError with the reason.
   * `allowExpired`: an expired token's claims too (what a token refresh reads; the store decides then).
   */
  verify(token: unknown, room: string, kind: 'member' | 'invite' = 'member', opts: { allowExpired?: boolean } = {}): TokenClaims {
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw new TokenError('malformed', 'the token is missing or too long');
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== PREFIX) throw new TokenError('malformed', 'the token is not a Remixroom token');
    const [, payload, mac] = parts as [string, string, string];
    const expected = Buffer.from(this.#mac(payload));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      throw new TokenError('bad_signature', 'the token was not signed by this server');
    }
    let claims: TokenClaims;
    try {
      claims = TokenClaimsSchema.parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
    } catch {
      throw new TokenError('malformed', 'the token claims are unreadable');
    }
    if (claims.exp * 1000 <= this.#now() && !opts.allowExpired) throw new TokenError('expired', 'the token has expired; ask the host for a new link');
    if (claims.room !== room) throw new TokenError('wrong_room', 'the token is for another room');
    if (claims.kind !== kind) {
      throw new TokenError('malformed', kind === 'member' ? 'an invite must be exchanged for a member token first' : 'this is not an invite');
    }
    return claims;
  }

  #mac(payload: string): string {
    return crypto.createHmac('sha256', this.#key).update(`${PREFIX}.${payload}`).digest('base64url');
  }
}
