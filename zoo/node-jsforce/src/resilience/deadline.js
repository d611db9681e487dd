// An end-to-end time budget handed down through a request's calls.

import { DeadlineExceededError } from './errors.js';

export class Deadline {
  /** @param {number|null} budgetMs null: no deadline */
  constructor(budgetMs, what = 'operation') {
    this.what = what;
    this.at = budgetMs == null ? Infinity : Date.now() + budgetMs;
  }

  static none() {
    return new Deadline(null);
  }

  /** A shorter deadline inside this one. */
  sub(budgetMs, what = this.what) {
    const d = new Deadline(budgetMs, what);
    d.at = Math.min(d.at, this.at);
    return d;
  }

  remaining() {
    return this.at === Infinity ? Infinity : Math.max(0, this.at - Date.now());
  }

  expired() {
    return this.remaining() <= 0;
  }

  check() {
    if (this.expired()) throw new DeadlineExceededError(this.what);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
