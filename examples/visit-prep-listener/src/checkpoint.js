// The replay id up to which every change event has been processed, in delivery order.
//
// Events are prepared a few at a time, so they finish out of order. The checkpoint only moves
// over a run of finished events: resubscribing from it may deliver again an event that was
// still being prepared (the listener drops those, see `seen`), but never skips one.

export class Checkpoint {
  constructor() {
    this.value = null; // the last replay id processed (with all before it), or null
    this.highestSeen = null; // the newest replay id accepted
    this.pending = []; // accepted, not yet finished, in order
    this.finished = new Set();
  }

  /** Whether the event is new (not delivered before); new ones are accepted. */
  accept(replayId) {
    if (this.highestSeen != null && replayId <= this.highestSeen) return false;
    // The first event: everything before it is behind us (we subscribed just before it).
    if (this.highestSeen == null && this.value == null) this.value = replayId - 1;
    this.highestSeen = replayId;
    this.pending.push(replayId);
    return true;
  }

  finish(replayId) {
    this.finished.add(replayId);
    while (this.pending.length && this.finished.has(this.pending[0])) {
      this.value = this.pending.shift();
      this.finished.delete(this.value);
    }
  }

  get inFlight() {
    return this.pending.length;
  }
}

/** Runs async jobs, at most `limit` at once, in the order they were pushed. */
export class WorkQueue {
  constructor(limit) {
    this.limit = limit;
    this.running = 0;
    this.jobs = [];
    this.idleWaiters = [];
  }

  push(job) {
    this.jobs.push(job);
    this.#pump();
  }

  get size() {
    return this.running + this.jobs.length;
  }

  /** Resolves when nothing is queued or running (or after `ms`). */
  idle(ms) {
    if (this.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  #pump() {
    while (this.running < this.limit && this.jobs.length) {
      const job = this.jobs.shift();
      this.running += 1;
      Promise.resolve()
        .then(job)
        .catch(() => {})
        .finally(() => {
          this.running -= 1;
          this.#pump();
          if (this.size === 0) for (const w of this.idleWaiters.splice(0)) w();
        });
    }
  }
}
