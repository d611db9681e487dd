// Bounded retries with capped exponential backoff and full jitter, Retry-After as a floor.

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A small seeded PRNG (mulberry32), so a run's jitter follows CRASHCART_SEED. */
export function seededRandom(seed) {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class GiveUp extends Error {
  constructor(what, attempts, cause) {
    super(`${what}: gave up after ${attempts} attempt(s): ${cause?.message ?? cause}`);
    this.name = 'GiveUp';
    this.cause = cause;
  }
}

/**
 * Run `fn(attempt)` up to `maxAttempts` times. `classify(err)` says
 * `{retryable, retryAfterMs}`; a non-retryable error is thrown at once, the last retryable one
 * is wrapped in GiveUp.
 */
export async function retrying(what, fn, { maxAttempts, baseMs = 200, capMs = 2000, classify, random, onRetry }) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn(attempt);
    } catch (err) {
      const c = classify(err);
      if (!c.retryable) throw err;
      if (attempt >= maxAttempts) throw new GiveUp(what, attempt, err);
      const backoff = Math.min(capMs, baseMs * 2 ** (attempt - 1)) * random();
      const wait = Math.max(backoff, c.retryAfterMs ?? 0);
      if (c.retryAfterMs != null && c.retryAfterMs > 30000) throw new GiveUp(what, attempt, err);
      onRetry?.(attempt, wait, err);
      await sleep(wait);
    }
  }
}

/** Retry-After (seconds or an HTTP date) or Retry-After-Ms, in ms; undefined if absent. */
export function retryAfterMs(headers) {
  if (!headers) return undefined;
  const get = (k) => (typeof headers.get === 'function' ? headers.get(k) : headers[k]);
  const ms = get('retry-after-ms');
  if (ms != null && Number.isFinite(Number(ms))) return Number(ms);
  const v = get('retry-after');
  if (v == null) return undefined;
  if (/^\d+(\.\d+)?$/.test(String(v).trim())) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}
