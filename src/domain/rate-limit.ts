// Token buckets: a steady rate with room for a burst. One agent session's frames and one API
// token's requests are limited the same way, so a flood from one client costs the others nothing.
// Pure: the caller passes the time (milliseconds, monotonic).

export interface RateLimit {
  perSecond: number;
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(
    private readonly limit: RateLimit,
    now: number,
  ) {
    this.tokens = limit.burst;
    this.refilledAt = now;
  }

  private refill(now: number): void {
    const { perSecond, burst } = this.limit;
    this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) / 1_000) * perSecond);
    this.refilledAt = now;
  }

  /** Takes one token; false when the bucket is empty. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until one token is back (0 when one is there). */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.limit.perSecond) * 1_000);
  }
}

/**
 * One bucket per key (an API token, a client address), at most `maxKeys` of them: past that the
 * least recently used key is forgotten, so a client inventing keys cannot grow the map without
 * bound (a forgotten key starts again with a full burst, which costs at most one burst).
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly maxKeys = 10_000,
  ) {}

  /** Takes one token of `key`'s bucket: null when allowed, else the milliseconds to wait. */
  take(key: string, now: number): number | null {
    let bucket = this.buckets.get(key);
    if (bucket) this.buckets.delete(key);
    else bucket = new TokenBucket(this.limit, now);
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    return bucket.take(now) ? null : Math.max(1, bucket.waitMs(now));
  }

  /** The milliseconds `key` must wait, without taking a token; null when it need not. */
  waitMs(key: string, now: number): number | null {
    const wait = this.buckets.get(key)?.waitMs(now) ?? 0;
    return wait > 0 ? wait : null;
  }

  get size(): number {
    return this.buckets.size;
  }
}
