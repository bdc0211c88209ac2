// Token buckets: `capacity` at once, then `perSecond` after that.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  /** Takes one token and returns 0, or returns how many ms until one is available. */
  take(now: number): number {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }
}

/** The contract's per-socket limits, and how much refused traffic counts as flooding. */
export const RATES = {
  sends: { capacity: 10, perSecond: 5 },
  frames: { capacity: 100, perSecond: 100 },
  // A socket may be refused now and then (a client with a fast finger); one refused more than
  // 50 times beyond 5 a second is flooding and is closed with 1008.
  refusals: { capacity: 50, perSecond: 5 },
} as const;

/**
 * One token bucket per key (a client IP), in bounded memory: a full bucket is the same as no
 * bucket, so idle keys are dropped whenever the map grows past `maxKeys`.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, { bucket: TokenBucket; fullAt: number }>();

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** Takes one token for `key` and returns 0, or returns how many ms until one is available. */
  take(key: string, now: number): number {
    let entry = this.buckets.get(key);
    if (!entry) {
      if (this.buckets.size >= this.maxKeys) this.dropIdle(now);
      entry = { bucket: new TokenBucket(this.capacity, this.perSecond, now), fullAt: now };
      this.buckets.set(key, entry);
    }
    // Even an empty bucket is full again this long after its last use.
    entry.fullAt = now + (1000 * this.capacity) / this.perSecond;
    return entry.bucket.take(now);
  }

  get size(): number {
    return this.buckets.size;
  }

  private dropIdle(now: number): void {
    for (const [key, entry] of this.buckets) if (entry.fullAt <= now) this.buckets.delete(key);
    // Everyone is active (an attack from many addresses): forget the oldest half rather than grow.
    if (this.buckets.size >= this.maxKeys) {
      let excess = this.buckets.size - this.maxKeys / 2;
      for (const key of this.buckets.keys()) {
        if (excess-- <= 0) break;
        this.buckets.delete(key);
      }
    }
  }
}
