// Salesforce through jsforce 3: OAuth 2.0 username-password login, re-login on
// INVALID_SESSION_ID, and the one write this listener makes (Visit_Prep__c on an Event),
// with bounded retries.
//
// Two things jsforce does that we turn off or replace (as zoo/node-jsforce found):
// - its transport retries GET/PUT/DELETE by itself (5 times, no jitter, no Retry-After) and
//   has no useful timeout: a Transport subclass sets `retry: {maxRetries: 0}` and a timeout
//   per attempt, and our own loop retries;
// - `conn.login()` installs a refresh function that is not single-flight; we log in through
//   `conn.oauth2.authenticate()` and give the Connection our own `refreshFn`, which shares one
//   login among every caller that got a 401 at the same time.

import { EventEmitter } from 'node:events';
import jsforce from 'jsforce';
import TransportModule from 'jsforce/lib/transport.js';
import { log } from './log.js';
import { GiveUp, retrying, sleep } from './retry.js';

const Transport = TransportModule.Transport ?? TransportModule.default;

class BoundedTransport extends Transport {
  constructor(timeoutMs) {
    super();
    this.timeoutMs = timeoutMs;
  }

  httpRequest(req, options = {}) {
    return super.httpRequest(req, { ...options, retry: { maxRetries: 0 }, timeout: this.timeoutMs });
  }
}

export class TimeoutError extends Error {
  constructor(what, ms) {
    super(`${what} took longer than ${ms}ms`);
    this.name = 'TimeoutError';
  }
}

/** jsforce's timeout stops at the response headers: bound the whole call. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ESOCKETTIMEDOUT',
  'UND_ERR_SOCKET',
]);
const RETRYABLE_CODES = new Set([
  'UNABLE_TO_LOCK_ROW',
  'SERVER_UNAVAILABLE',
  'REQUEST_LIMIT_EXCEEDED',
  'REQUEST_RUNNING_TOO_LONG',
  'QUERY_TIMEOUT',
]);
/** The record is gone or was never ours to write: nothing to retry. */
const GONE_CODES = new Set(['ENTITY_IS_DELETED', 'NOT_FOUND', 'INVALID_CROSS_REFERENCE_KEY']);

export function classifySalesforceError(err) {
  const code = err?.errorCode || err?.code || err?.name;
  if (err instanceof TimeoutError) return { retryable: true, ambiguous: true, kind: 'timeout' };
  if (NETWORK_CODES.has(code) || err?.name === 'AbortError' || err?.name === 'FetchError') {
    return { retryable: true, ambiguous: true, kind: code || err.name };
  }
  if (RETRYABLE_CODES.has(code)) return { retryable: true, kind: code };
  const http = /^ERROR_HTTP_(\d{3})$/.exec(code || '');
  if (http && (Number(http[1]) >= 500 || Number(http[1]) === 429 || Number(http[1]) === 408)) {
    return { retryable: true, ambiguous: true, kind: code };
  }
  if (/session/i.test(err?.message || '') && /refresh/i.test(err?.message || '')) {
    // "Unable to refresh session due to: ..." (our refreshFn failed): try again later.
    return { retryable: true, kind: 'relogin-failed' };
  }
  return { retryable: false, kind: code || 'error' };
}

/** Single-flight OAuth 2.0 username-password login; emits 'session' with each new token. */
export class Salesforce extends EventEmitter {
  constructor(settings, random) {
    super();
    this.settings = settings;
    this.random = random;
    this.userId = null;
    this.inflight = null;
    this.logins = 0;
    this.orgClockOffsetMs = 0;
    this.conn = new jsforce.Connection({
      oauth2: {
        loginUrl: settings.loginUrl,
        clientId: settings.clientId,
        clientSecret: settings.clientSecret,
      },
      instanceUrl: settings.instanceUrl,
      version: settings.version,
      // Called by jsforce on 401 INVALID_SESSION_ID; it resends the request afterwards.
      refreshFn: (_conn, callback) => {
        this.login('INVALID_SESSION_ID').then(
          (token) => callback(null, token),
          (err) => callback(err),
        );
      },
    });
    const transport = new BoundedTransport(settings.callTimeoutMs);
    this.conn._transport = transport;
    this.conn.oauth2._transport = new BoundedTransport(settings.loginTimeoutMs);
  }

  /** Log in (shared by concurrent callers). Rejects when the org refuses or is unreachable. */
  login(reason) {
    if (!this.inflight) {
      this.inflight = this.#login(reason).finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  async #login(reason) {
    this.logins += 1;
    const res = await within(
      this.conn.oauth2.authenticate(this.settings.username, this.settings.password),
      this.settings.loginTimeoutMs,
      'login',
    );
    this.conn.accessToken = res.access_token;
    if (res.instance_url) this.conn.instanceUrl = res.instance_url;
    if (res.id) this.userId = String(res.id).split('/').pop();
    // The org's clock may not be ours (commitTimestamp, CreatedDate): keep the difference.
    const issued = Number(res.issued_at);
    if (Number.isFinite(issued) && issued > 0) this.orgClockOffsetMs = issued - Date.now();
    log.info('logged in to Salesforce', { reason, instance: this.conn.instanceUrl, user: this.userId, logins: this.logins });
    this.emit('session', res.access_token);
    return res.access_token;
  }

  /** The first login: keep trying while the org is unreachable; throw if it refuses us. */
  async firstLogin(stopped) {
    for (let failures = 0; !stopped(); ) {
      try {
        return await this.login('start');
      } catch (err) {
        const refused = err?.name === 'invalid_grant' || err?.name === 'invalid_client' || /authentication failure/i.test(err?.message || '');
        if (refused) throw err;
        failures += 1;
        const wait = Math.min(5000, 500 * 2 ** Math.min(failures - 1, 10));
        log.warn('cannot log in to Salesforce yet; trying again', { error: err, waitMs: wait });
        await sleep(wait);
      }
    }
    return null;
  }

  /** The org's time now, in epoch ms. */
  orgNow() {
    return Date.now() + this.orgClockOffsetMs;
  }

  #retryOptions(what) {
    return {
      maxAttempts: this.settings.maxAttempts,
      random: this.random,
      classify: classifySalesforceError,
      onRetry: (attempt, wait, err) =>
        log.warn(`${what} failed; retrying`, { attempt, waitMs: Math.round(wait), error: err }),
    };
  }

  /** The Event's current Visit_Prep__c: null when empty, undefined when the Event is gone. */
  async readVisitPrep(eventId) {
    try {
      const rec = await retrying(
        `read Event ${eventId}`,
        () => within(this.conn.sobject('Event').retrieve(eventId, { fields: ['Id', 'Visit_Prep__c'] }), this.settings.callTimeoutMs, 'read Event'),
        this.#retryOptions(`read Event ${eventId}`),
      );
      return rec?.Visit_Prep__c || null;
    } catch (err) {
      if (GONE_CODES.has(err?.errorCode)) return undefined;
      throw err;
    }
  }

  /**
   * Write the notes into the Event. A write whose outcome we did not learn (timeout, dropped
   * connection, 5xx) may have landed: before sending it again we read the Event, and stop if
   * the notes are there. Returns 'written', 'already' or 'gone'.
   */
  async writeVisitPrep(eventId, notes) {
    const what = `write Visit_Prep__c of Event ${eventId}`;
    let unsure = false;
    try {
      return await retrying(
        what,
        async () => {
          if (unsure) {
            const current = await this.readVisitPrep(eventId);
            if (current === undefined) return 'gone';
            if (current) return 'already';
          }
          try {
            const res = await within(
              this.conn.sobject('Event').update({ Id: eventId, Visit_Prep__c: notes }),
              this.settings.callTimeoutMs,
              'update Event',
            );
            if (res && res.success === false) {
              const e = res.errors?.[0] || {};
              const err = new Error(e.message || 'update refused');
              err.errorCode = e.errorCode || e.statusCode;
              throw err;
            }
            return 'written';
          } catch (err) {
            if (classifySalesforceError(err).ambiguous) unsure = true;
            throw err;
          }
        },
        this.#retryOptions(what),
      );
    } catch (err) {
      if (GONE_CODES.has(err?.errorCode)) return 'gone';
      throw err instanceof GiveUp ? err : new GiveUp(what, 1, err);
    }
  }

  /** Events created since `sinceIso` (SOQL datetime literal), for a resync after a gap. */
  async eventsCreatedSince(sinceIso) {
    const soql =
      'SELECT Id, Subject, StartDateTime, EndDateTime, Location, Description, Visit_Prep__c, CreatedById ' +
      `FROM Event WHERE CreatedDate >= ${sinceIso} ORDER BY CreatedDate LIMIT 2000`;
    const res = await retrying(
      'resync query',
      () => within(this.conn.query(soql), this.settings.callTimeoutMs, 'query'),
      this.#retryOptions('resync query'),
    );
    return res.records || [];
  }
}
