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
