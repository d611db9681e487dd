// Capped exponential backoff with "equal jitter": half of the step is fixed, half random, so
// retries never come back sooner than half the step and never in lock-step.

export function backoffDelay(attempt, { baseMs, capMs }) {
  // attempt: 1 for the wait before the first retry
  if (baseMs <= 0) return 0;
  const step = Math.min(capMs, baseMs * 2 ** (attempt - 1));
  return step / 2 + Math.random() * (step / 2);
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(headers) {
  if (!headers) return null;
  const get = (name) =>
    typeof headers.get === 'function' ? headers.get(name) : headers[name] ?? headers[name.toLowerCase()];
  const ms = get('retry-after-ms');
  if (ms != null && ms !== '' && !Number.isNaN(Number(ms))) return Number(ms);
  const ra = get('retry-after');
  if (ra == null || ra === '') return null;
  const secs = Number(ra);
  if (!Number.isNaN(secs)) return secs * 1000;
  const date = Date.parse(ra);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}
