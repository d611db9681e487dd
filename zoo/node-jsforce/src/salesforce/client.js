// Salesforce through jsforce, with the resilience jsforce does not have.
//
// What jsforce 3.10 gives and what we add (see README.md, "jsforce notes"):
// - OAuth 2.0 username-password login (`oauth2.authenticate`) and a session refresh hook
//   (`refreshFn`, called on 401, shared by concurrent requests). We do NOT use
//   `conn.login()`: it installs a refresh function that calls `conn.login()` again, which
//   replaces the refresh delegate on every refresh, so concurrent 401s each start their own
//   login (a refresh storm). Our refreshFn logs in through one single-flight session.
// - jsforce's transport retries GET/PUT/DELETE by itself (5 times, 0.5 s doubling, no jitter,
//   no Retry-After) and has a 30-minute default timeout. Our transport subclass turns its
//   retries off and sets a per-attempt timeout, and records each answer's status and headers
//   (ETag, Retry-After, Sforce-Limit-Info), which jsforce's methods do not return.
// - Our own: retry with backoff, circuit breaker, quota pause, API version and field drift.

import { AsyncLocalStorage } from 'node:async_hooks';
import jsforce from 'jsforce';
import TransportModule from 'jsforce/lib/transport.js';
import { config } from '../config.js';
import { log } from '../log.js';
import { parseRetryAfter } from '../resilience/backoff.js';
import { CircuitBreaker } from '../resilience/breaker.js';
import { Deadline, sleep } from '../resilience/deadline.js';
import {
  AttemptTimeoutError,
  DependencyUnavailableError,
  QuotaPausedError,
} from '../resilience/errors.js';
import { breakerGate, retrying } from '../resilience/retry.js';
import { Drift } from './drift.js';

const Transport = TransportModule.Transport ?? TransportModule.default;
const sfConfig = config.salesforce;

// The HTTP answer of the current attempt, for the code that called jsforce.
const httpContext = new AsyncLocalStorage();

class ObservedTransport extends Transport {
  httpRequest(req, options = {}) {
    const store = httpContext.getStore();
    const timeout = store ? store.timeoutMs : sfConfig.callTimeoutMs;
    return super.httpRequest(req, {
      ...options,
      retry: { maxRetries: 0 }, // our retry loop decides
      ...(timeout != null ? { timeout } : {}),
    });
  }

  getRequestStreamCreator() {
    const create = super.getRequestStreamCreator();
    const store = httpContext.getStore();
    return (req, options) => {
      const stream = create(req, options);
      if (store) {
        stream.on('response', (res) => {
          store.status = res.statusCode;
          store.headers = res.headers;
        });
      }
      return stream;
    };
  }
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
]);

export function errorCodeOf(err) {
  return err?.errorCode || err?.name;
}

/** Pause after REQUEST_LIMIT_EXCEEDED (or Sforce-Limit-Info near the limit), then probe singly. */
class QuotaGate {
  constructor(pauseMs) {
    this.pauseMs = pauseMs;
    this.pausedUntil = 0;
    this.limited = false;
    this.probeInFlight = false;
  }

  acquire() {
    if (!this.limited) return { probe: false };
    if (Date.now() < this.pausedUntil || this.probeInFlight) throw new QuotaPausedError();
    this.probeInFlight = true;
    return { probe: true };
  }

  settle(ticket, outcome) {
    if (ticket?.probe) this.probeInFlight = false;
    if (outcome === 'quota') {
      if (!this.limited) log.warn('salesforce quota exhausted: pausing', { pauseMs: this.pauseMs });
      this.limited = true;
      this.pausedUntil = Date.now() + this.pauseMs;
    } else if (ticket?.probe && outcome !== 'cancelled' && outcome !== 'failure') {
      log.info('salesforce quota available again');
      this.limited = false;
    }
  }

  /** From the Sforce-Limit-Info header of any answer. */
  observe(headers) {
    const info = headers?.['sforce-limit-info'];
    const m = info && /api-usage=(\d+)\/(\d+)/.exec(info);
    if (!m) return;
    const [used, max] = [Number(m[1]), Number(m[2])];
    if (max > 0 && (max - used) / max < sfConfig.quotaReserveRatio) {
      if (!this.limited) log.warn('salesforce quota nearly spent: pausing', { used, max });
      this.limited = true;
      this.pausedUntil = Math.max(this.pausedUntil, Date.now() + this.pauseMs);
    }
  }
}

/** Single-flight OAuth 2.0 username-password login. */
class Session {
  constructor(conn) {
    this.conn = conn;
    this.inflight = null;
    this.pausedUntil = 0;
    this.pauseMs = sfConfig.loginPauseMs[0];
    this.logins = 0;
  }

  login(reason) {
    if (this.inflight) return this.inflight;
    if (Date.now() < this.pausedUntil) {
      return Promise.reject(new DependencyUnavailableError('salesforce-auth', 'login refused recently'));
    }
    this.inflight = this.#login(reason).finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  async #login(reason) {
    this.logins += 1;
    const store = { timeoutMs: sfConfig.loginTimeoutMs };
    try {
      const res = await httpContext.run(store, () =>
        guard(this.conn.oauth2.authenticate(sfConfig.username, sfConfig.password), sfConfig.loginTimeoutMs, 'login'),
      );
      this.conn.accessToken = res.access_token;
      if (res.instance_url) this.conn.instanceUrl = res.instance_url;
      this.pauseMs = sfConfig.loginPauseMs[0];
      log.info('salesforce login', { reason, logins: this.logins });
      return res.access_token;
    } catch (err) {
      // Refused or unreachable: do not ask again at once (callers fail fast meanwhile).
      this.pausedUntil = Date.now() + this.pauseMs;
      this.pauseMs = Math.min(this.pauseMs * 2, sfConfig.loginPauseMs[1]);
      log.warn('salesforce login failed', { reason, error: err.name, message: err.message });
      throw err;
    }
  }
}

/** A promise that rejects after ms (jsforce's own timeout only covers the response headers). */
function guard(promise, ms, what) {
  if (ms == null) return promise;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new AttemptTimeoutError(what, ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class SalesforceClient {
  constructor() {
    this.breaker = new CircuitBreaker('salesforce', config.breaker);
    this.quota = new QuotaGate(sfConfig.quotaPauseMs);
    this.drift = new Drift();
    this.versionRefresh = null;
    this.ready = false;
    this.conn = null;
    this.session = null;
  }

  async start() {
    if (sfConfig.relogin) {
      const conn = new jsforce.Connection({
        oauth2: {
          loginUrl: sfConfig.loginUrl,
          clientId: sfConfig.clientId,
          clientSecret: sfConfig.clientSecret,
        },
        instanceUrl: sfConfig.instanceUrl,
        version: sfConfig.version,
        refreshFn: (c, callback) => {
          this.session.login('INVALID_SESSION_ID').then(
            (token) => callback(null, token),
            (err) => callback(err),
          );
        },
      });
      this.#instrument(conn);
      this.conn = conn;
      this.session = new Session(conn);
      await this.#loginUntilReady(() => this.session.login('start-up'));
    } else {
      // Variant no-refresh: a token fetched at start-up, handed to a Connection that cannot
      // renew it.
      const oauth2 = new jsforce.OAuth2({
        loginUrl: sfConfig.loginUrl,
        clientId: sfConfig.clientId,
        clientSecret: sfConfig.clientSecret,
      });
      oauth2._transport = new ObservedTransport();
      const res = await this.#loginUntilReady(() =>
        httpContext.run({ timeoutMs: sfConfig.loginTimeoutMs }, () =>
          oauth2.authenticate(sfConfig.username, sfConfig.password),
        ),
      );
      this.conn = new jsforce.Connection({
        instanceUrl: res.instance_url || sfConfig.instanceUrl,
        accessToken: res.access_token,
        version: sfConfig.version,
      });
      this.#instrument(this.conn);
    }
    this.ready = true;
  }

  #instrument(conn) {
    // jsforce has no option for a custom transport; both the REST calls and the token
    // endpoint go through these fields.
    const transport = new ObservedTransport();
    conn._transport = transport;
    if (conn.oauth2) conn.oauth2._transport = transport;
  }

  async #loginUntilReady(fn) {
    for (let pause = 250; ; pause = Math.min(pause * 2, 2000)) {
      try {
        return await fn();
      } catch (err) {
        log.warn('start-up login failed, trying again', { error: err.message });
        await sleep(pause + Math.random() * 100);
      }
    }
  }

  classify(err, http) {
    const code = errorCodeOf(err);
    const status = http?.status;
    if (err instanceof AttemptTimeoutError || err?.name === 'AbortError') {
      return { retryable: true, outcome: 'failure', unknown: true, kind: 'timeout' };
    }
    if (err?.name === 'FetchError' || NETWORK_CODES.has(err?.code)) {
      return { retryable: true, outcome: 'failure', unknown: true, kind: 'network' };
    }
    if (err instanceof DependencyUnavailableError) {
      // The token endpoint refused recently: worth another try after a pause.
      return { retryable: err.dependency === 'salesforce-auth', outcome: 'neutral', kind: 'auth' };
    }
    if (typeof err?.message === 'string' && err.message.startsWith('Unable to refresh session')) {
      return { retryable: true, outcome: 'neutral', kind: 'auth' };
    }
    if (code === 'REQUEST_LIMIT_EXCEEDED') return { retryable: false, outcome: 'quota', kind: 'quota' };
    if (code === 'UNABLE_TO_LOCK_ROW') return { retryable: true, outcome: 'neutral', kind: 'lock' };
    if (code === 'UNSUPPORTED_API_VERSION' || status === 410) {
      return { retryable: false, outcome: 'neutral', kind: 'version' };
    }
    if (status >= 500 || code === 'SERVER_UNAVAILABLE' || /^ERROR_HTTP_5\d\d$/.test(code ?? '')) {
      return { retryable: true, outcome: 'failure', retryAfterMs: parseRetryAfter(http?.headers), kind: '5xx' };
    }
    if (status === 429) {
      return { retryable: true, outcome: 'failure', retryAfterMs: parseRetryAfter(http?.headers), kind: '429' };
    }
    return { retryable: false, outcome: 'neutral', kind: 'client' };
  }

  /**
   * One logical Salesforce call.
   * @param {string} what
   * @param {(conn: any, record?: object) => Promise<any>} fn calls jsforce
   * @param {object} [opts]
   * @param {Deadline} [opts.deadline]
   * @param {{object: string, record: object}} [opts.write] a record to send, filtered for drift
   * @param {(c: object) => void} [opts.onAttemptError] sees each failed attempt's classification
   * @returns {Promise<{result: any, http: {status?: number, headers?: object}}>}
   */
  async call(what, fn, { deadline = Deadline.none(), write = null, onAttemptError = null } = {}) {
    if (!this.ready) throw new DependencyUnavailableError('salesforce', 'not logged in yet');
    const gates = [this.quota, breakerGate(this.breaker)];
    let lastHttp = {};
    return retrying(
      what,
      async () => {
        const remaining = deadline.remaining();
        const timeoutMs = sfConfig.callTimeoutMs == null ? null : Math.min(sfConfig.callTimeoutMs, remaining);
        const store = { timeoutMs };
        lastHttp = store;
        const record = write ? this.drift.apply(write.object, write.record) : undefined;
        // Allow for one re-login and re-send inside the attempt, on top of the call itself.
        const guardMs = timeoutMs == null ? null : timeoutMs + (sfConfig.relogin ? sfConfig.loginTimeoutMs : 0) + 250;
        const result = await httpContext.run(store, () => guard(fn(this.conn, record), guardMs, what));
        this.quota.observe(store.headers);
        return { result, http: store };
      },
      {
        deadline,
        maxAttempts: sfConfig.maxAttempts,
        gates,
        classify: (err) => {
          this.quota.observe(lastHttp.headers);
          const c = this.classify(err, lastHttp);
          if (c.kind === 'version') {
            c.repaired = this.#onVersionRetired(err);
          } else if (c.kind === 'client' && write) {
            c.repaired = this.drift.learn(write.object, err, this.drift.apply(write.object, write.record));
          }
          if (c.kind !== 'lock' && c.kind !== 'client') {
            log.debug('salesforce attempt failed', { what, kind: c.kind, error: errorCodeOf(err) });
          }
          onAttemptError?.(c, err);
          return c;
        },
      },
    ).then(
      (r) => r,
      (err) => {
        err.salesforceStatus ??= lastHttp.status;
        throw err;
      },
    );
  }

  /** A retired API version: move to the newest the org serves (single flight). */
  #onVersionRetired(err) {
    const current = this.conn.version;
    if (!this.versionRefresh) {
      this.versionRefresh = (async () => {
        try {
          const versions = await httpContext.run({ timeoutMs: sfConfig.callTimeoutMs }, () =>
            this.conn.request('/services/data/'),
          );
          const newest = versions
            .map((v) => v.version)
            .sort((a, b) => Number(a) - Number(b))
            .pop();
          if (newest && newest !== this.conn.version) {
            log.warn('salesforce API version retired: moving on', { from: this.conn.version, to: newest });
            this.conn.version = newest;
          }
        } catch (e) {
          log.warn('salesforce versions list unavailable', { error: e.message });
        } finally {
          setTimeout(() => {
            this.versionRefresh = null;
          }, 1000);
        }
      })();
    }
    // The caller re-sends once the new version is known (each call awaits versionRefresh).
    return this.conn.version !== current || Boolean(this.versionRefresh);
  }

  // --- The operations the services use ---------------------------------------------------

  async upsert(object, extIdField, record, opts = {}) {
    const { result } = await this.call(
      `upsert ${object}`,
      async (conn, rec) => {
        await this.versionRefresh;
        return conn.sobject(object).upsert(rec, extIdField);
      },
      { ...opts, write: { object, record } },
    );
    return result;
  }

  async create(object, record, opts = {}) {
    const { result } = await this.call(
      `create ${object}`,
      async (conn, rec) => {
        await this.versionRefresh;
        return conn.sobject(object).create(rec);
      },
      { ...opts, write: { object, record } },
    );
    return result;
  }

  async query(soql, opts = {}) {
    const { result } = await this.call(
      'query',
      async (conn) => {
        await this.versionRefresh;
        return conn.query(soql, { autoFetch: false });
      },
      opts,
    );
    return result.records;
  }

  /** GET a record (by id, or by `field/value` of an external id) with its ETag; null when absent. */
  async retrieveWithEtag(object, idPath, opts = {}) {
    try {
      const { result, http } = await this.call(
        `retrieve ${object}`,
        async (conn) => {
          await this.versionRefresh;
          return conn.request(`/sobjects/${object}/${idPath}`);
        },
        opts,
      );
      return { record: result, etag: http.headers?.etag ?? null };
    } catch (err) {
      if (errorCodeOf(err) === 'NOT_FOUND') return null;
      throw err;
    }
  }

  /** PATCH a record; with an ETag, only if it is unchanged (412 PRECONDITION_FAILED otherwise). */
  async update(object, id, fields, { etag = null, ...opts } = {}) {
    const headers = etag ? { 'If-Match': etag } : {};
    const { result } = await this.call(
      `update ${object}`,
      async (conn, rec) => {
        await this.versionRefresh;
        return conn.sobject(object).update({ Id: id, ...rec }, { headers });
      },
      { ...opts, write: { object, record: fields } },
    );
    return result;
  }

  /** Delete; a record already gone counts as deleted. */
  async destroy(object, id, opts = {}) {
    try {
      await this.call(
        `delete ${object}`,
        async (conn) => {
          await this.versionRefresh;
          return conn.sobject(object).destroy(id);
        },
        opts,
      );
    } catch (err) {
      const code = errorCodeOf(err);
      if (code === 'ENTITY_IS_DELETED' || code === 'NOT_FOUND') return;
      throw err;
    }
  }
}

export function soqlString(value) {
  return `'${String(value).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
