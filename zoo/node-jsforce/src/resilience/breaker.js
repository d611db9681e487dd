// A circuit breaker per dependency: closed → (N consecutive failures) → open for a while →
// half-open, where exactly one probe goes through; its outcome closes or re-opens the circuit.

import { log } from '../log.js';
import { BreakerOpenError } from './errors.js';

export class CircuitBreaker {
  constructor(name, { enabled = true, failureThreshold = 5, openMs = 1000 } = {}) {
    this.name = name;
    this.enabled = enabled;
    this.failureThreshold = failureThreshold;
    this.openMs = openMs;
    this.state = 'closed';
    this.failures = 0;
    this.openedAt = 0;
    this.probeInFlight = false;
  }

  /**
   * Ask to make one call. Returns a ticket to report the outcome with, or throws
   * BreakerOpenError. A ticket is a probe when the breaker is half-open.
   */
  acquire() {
    if (!this.enabled) return { probe: false };
    if (this.state === 'open') {
      if (Date.now() - this.openedAt < this.openMs) throw new BreakerOpenError(this.name);
      this.state = 'half-open';
    }
    if (this.state === 'half-open') {
      if (this.probeInFlight) throw new BreakerOpenError(this.name);
      this.probeInFlight = true;
      return { probe: true };
    }
    return { probe: false };
  }

  success(ticket) {
    if (!this.enabled) return;
    if (ticket?.probe) this.probeInFlight = false;
    if (this.state !== 'closed') log.info('breaker closed', { dependency: this.name });
    this.state = 'closed';
    this.failures = 0;
  }

  failure(ticket) {
    if (!this.enabled) return;
    if (ticket?.probe) this.probeInFlight = false;
    this.failures += 1;
    if (this.state === 'half-open' || (this.state === 'closed' && this.failures >= this.failureThreshold)) {
      if (this.state === 'closed') log.warn('breaker opened', { dependency: this.name, failures: this.failures });
      this.state = 'open';
      this.openedAt = Date.now();
    }
  }

  /** A ticket given back unused (another gate refused the call). */
  release(ticket) {
    if (this.enabled && ticket?.probe) this.probeInFlight = false;
  }

  /** A call that ended without telling anything about the dependency (e.g. a 4xx). */
  neutral(ticket) {
    if (!this.enabled) return;
    if (ticket?.probe) {
      this.probeInFlight = false;
      // The dependency answered: that is as good as a success for the circuit.
      this.success();
    } else {
      this.failures = 0;
    }
  }
}
