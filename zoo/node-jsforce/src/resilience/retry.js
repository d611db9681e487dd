// The one retry loop every dependency call goes through.
//
// Each attempt first passes the gates (circuit breaker, quota pause); its outcome is reported
// back to them. Retryable failures are retried with capped exponential backoff and equal
// jitter, or after the server's Retry-After when it sent one, within a bounded number of
// attempts and the caller's deadline. A failure the caller can repair at once (a field the
// org no longer has, a retired API version) is re-sent without counting as a retry.

import { config } from '../config.js';
import { log } from '../log.js';
import { backoffDelay } from './backoff.js';
import { DeadlineExceededError } from './errors.js';
import { sleep } from './deadline.js';

const MAX_REPAIRS = 3;
// No point starting an attempt with less time than this left.
const MIN_USEFUL_MS = 100;

/**
 * @param {string} what a name for logs
 * @param {(ctx: {attempt: number}) => Promise<any>} attemptFn
 * @param {object} opts
 * @param {import('./deadline.js').Deadline} opts.deadline
 * @param {number} opts.maxAttempts
 * @param {(err: Error) => {retryable: boolean, outcome: string, retryAfterMs?: number|null, repaired?: boolean}} opts.classify
 *   outcome: 'failure' (the dependency is unwell), 'neutral' (it answered), 'quota'
 * @param {Array<{acquire: () => any, settle: (ticket: any, outcome: string) => void}>} [opts.gates]
 */
export async function retrying(what, attemptFn, { deadline, maxAttempts, classify, gates = [] }) {
  let attempt = 0;
  let repairs = 0;
  let lastErr = null;
  for (;;) {
    attempt += 1;
    if (deadline.remaining() < MIN_USEFUL_MS) {
      throw lastErr ?? new DeadlineExceededError(what);
    }
    const tickets = [];
    try {
      for (const g of gates) tickets.push(g.acquire());
    } catch (gateErr) {
      tickets.forEach((t, i) => gates[i].settle(t, 'cancelled'));
      throw gateErr;
    }
    try {
      const result = await attemptFn({ attempt });
      tickets.forEach((t, i) => gates[i].settle(t, 'success'));
      return result;
    } catch (err) {
      const c = classify(err);
      tickets.forEach((t, i) => gates[i].settle(t, c.outcome));
      lastErr = err;
      if (c.repaired && repairs < MAX_REPAIRS) {
        repairs += 1;
        attempt -= 1; // a repaired request is a new request, not a retry
        continue;
      }
      if (!c.retryable || attempt >= maxAttempts) throw err;
      let waitMs = backoffDelay(attempt, config.backoff);
      if (config.backoff.honourRetryAfter && c.retryAfterMs != null) {
        const ra = Math.min(c.retryAfterMs, config.backoff.retryAfterCapMs);
        waitMs = Math.max(waitMs, ra + Math.random() * 100);
      }
      if (waitMs + MIN_USEFUL_MS > deadline.remaining()) throw err;
      log.debug('retrying', { what, attempt, waitMs: Math.round(waitMs), error: err.errorCode || err.name });
      await sleep(waitMs);
    }
  }
}

/** Adapts a CircuitBreaker to the gate interface. */
export function breakerGate(breaker) {
  return {
    acquire: () => breaker.acquire(),
    settle: (ticket, outcome) => {
      if (outcome === 'success') breaker.success(ticket);
      else if (outcome === 'failure') breaker.failure(ticket);
      else if (outcome === 'cancelled') breaker.release(ticket);
      else breaker.neutral(ticket);
    },
  };
}
