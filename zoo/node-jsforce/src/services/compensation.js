// Undo of a failed booking: delete every Event that carries its booking key.
//
// Tried at once; when Salesforce cannot be reached, kept and tried again in the background
// until it is done. A write whose answer was lost may still land after we gave up on it, so a
// compensation is only finished by a clean look at least VERIFY_AFTER_MS after the failure.

import { log } from '../log.js';
import { Deadline } from '../resilience/deadline.js';
import { soqlString } from '../salesforce/client.js';

const VERIFY_AFTER_MS = 2500;
const GIVE_UP_AFTER_MS = 120_000;
const TICK_MS = 250;

export class Compensator {
  constructor(sf) {
    this.sf = sf;
    this.pending = new Map(); // booking key -> {failedAt, nextAt, tries, deleted}
    this.timer = null;
    this.running = false;
  }

  /** Compensate now (best effort, short), and keep at it in the background. */
  async compensate(bookingKey) {
    const job = { failedAt: Date.now(), nextAt: 0, tries: 0, deleted: 0 };
    this.pending.set(bookingKey, job);
    await this.#attempt(bookingKey, job, new Deadline(1500, 'compensation'));
    this.#schedule();
  }

  async #attempt(key, job, deadline, final = false) {
    job.tries += 1;
    try {
      const found = await this.sf.query(`SELECT Id FROM Event WHERE Booking_Key__c = ${soqlString(key)}`, { deadline });
      for (const r of found) {
        await this.sf.destroy('Event', r.Id, { deadline });
        job.deleted += 1;
        log.info('compensated: deleted Event of failed booking', { booking_key: key, id: r.Id });
      }
      const age = Date.now() - job.failedAt;
      if (found.length === 0 && (age >= VERIFY_AFTER_MS || final)) {
        this.pending.delete(key);
        log.debug('compensation verified', { booking_key: key, tries: job.tries, deleted: job.deleted });
      } else {
        job.nextAt = job.failedAt + VERIFY_AFTER_MS;
      }
    } catch (err) {
      const backoff = Math.min(2000, 200 * 2 ** Math.min(job.tries, 4));
      job.nextAt = Date.now() + backoff / 2 + (Math.random() * backoff) / 2;
      if (Date.now() - job.failedAt > GIVE_UP_AFTER_MS) {
        this.pending.delete(key);
        log.error('compensation abandoned: Event may remain', { booking_key: key, error: err.message });
      } else {
        log.debug('compensation postponed', { booking_key: key, error: err.errorCode || err.name });
      }
    }
  }

  #schedule() {
    if (this.timer || this.pending.size === 0) return;
    this.timer = setTimeout(() => this.#tick(), TICK_MS);
  }

  async #tick() {
    this.timer = null;
    if (this.running) return this.#schedule();
    this.running = true;
    try {
      const due = [...this.pending.entries()].filter(([, j]) => j.nextAt <= Date.now());
      for (const [key, job] of due) {
        await this.#attempt(key, job, new Deadline(3000, 'compensation'));
      }
    } finally {
      this.running = false;
      this.#schedule();
    }
  }

  /** At shutdown: one more go at whatever is left. */
  async drain(budgetMs) {
    const deadline = new Deadline(budgetMs, 'compensation drain');
    for (const [key, job] of this.pending) {
      if (deadline.expired()) break;
      await this.#attempt(key, job, deadline, true);
    }
    if (this.pending.size) log.warn('compensations left at shutdown', { keys: [...this.pending.keys()] });
  }
}
