// The Change Data Capture listener: jsforce's Streaming API client (faye, CometD long
// polling) on /data/EventChangeEvent, with jsforce's Replay extension; for each CREATE of an
// Event, notes from the model written into Visit_Prep__c.
//
// Reconnects. Three things can end a subscription, and each one subscribes again from the
// last replay id processed (`#resumeFrom`), so nothing written meanwhile is missed:
// - the server forgets the client (`403::Unknown client`, advice `handshake`): faye
//   handshakes again and re-sends the subscription by itself. Our extension sets the replay
//   id on that re-sent `/meta/subscribe`;
// - the session is no longer valid (`401::Authentication invalid`, advice `reconnect: none`:
//   faye gives up for good): we log in again and build a new client;
// - the subscription is refused (for instance a replay id past retention): a new client,
//   and when the replay id is the problem, replay all retained events (-2) and look for the
//   Events created meanwhile with a query (a resync).
// Network errors are faye's own business: it re-sends every failed request, once a second
// here (`retrySeconds`) instead of faye's 5 s.

import streamingModule from 'jsforce/lib/api/streaming.js';
import { Checkpoint, WorkQueue } from './checkpoint.js';
import { log } from './log.js';
import { GiveUp, sleep } from './retry.js';

const { StreamingExtension } = streamingModule;

export const READY_LINE = 'visit-prep-listener: subscribed';

/** Record ids we remember having handled (bounded: a long-running listener must not grow). */
const MAX_HANDLED = 50_000;

const isAuthFailure = (m) =>
  m.successful === false &&
  (/^401::/.test(m.error || '') || /401::/.test(m.ext?.sfdc?.failureReason || '') || m.advice?.reconnect === 'none');

/** `2026-12-02T15:00:00Z` from epoch ms (a SOQL datetime literal). */
const soqlDatetime = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class VisitPrepListener {
  constructor(settings, sf, llm) {
    this.settings = settings;
    this.channel = settings.channel;
    this.sf = sf;
    this.llm = llm;
    this.checkpoint = new Checkpoint();
    this.queue = new WorkQueue(settings.concurrency);
    this.handled = new Set(); // Event ids being or already prepared
    this.generation = 0; // one per streaming client; messages of older clients are ignored
    this.client = null;
    this.subscribedOnce = false;
    this.firstSubscribeAt = null; // ms; with no checkpoint yet, older events are not ours
    this.lastCommitMs = null; // commitTimestamp of the newest event seen
    this.replayOverride = null; // -2 after a refused replay id
    this.rebuilding = false;
    this.stopped = false;
    this.resyncSince = null; // org ms: a resync is due once subscribed again
    this.stats = { prepared: 0, already: 0, failed: 0, ignored: 0, duplicates: 0, resubscribes: 0 };
    sf.on('session', (token) => {
      // A new token (our REST calls re-logged in): hand it to the live streaming client too.
      this.client?.setHeader('Authorization', `OAuth ${token}`);
    });
  }

  start() {
    this.#connect();
  }

  /**
   * Where a subscription starts. The very first one: new events from now on (-1). Every later
   * one, after any disconnect, re-handshake or new client: from the last replay id processed.
   */
  #replayIdForSubscribe() {
    if (this.replayOverride != null) return this.replayOverride;
    if (!this.subscribedOnce) return -1;
    this.stats.resubscribes += 1;
    return this.#resumeFrom();
  }

  /** The replay id a re-subscription resumes from. THE variant switch. */
  #resumeFrom() {
    if (this.settings.variant === 'loses-events-on-reconnect') {
      // Broken on purpose: "just get the new ones" — whatever was written while we were
      // disconnected is never delivered.
      return -1;
    }
    // Nothing processed yet: all retained events; those from before our first subscription
    // are skipped (see #onEvent).
    return this.checkpoint.value ?? -2;
  }

  /** A new faye client (jsforce's streaming client) with our extensions, subscribed. */
  #connect() {
    const gen = ++this.generation;
    const replay = new StreamingExtension.Replay(this.channel, -1);
    const client = this.sf.conn.streaming.createClient([this.#monitor(gen, replay), replay]);
    // faye waits 5 s before re-sending a failed request and jsforce passes it no options; the
    // dispatcher is where jsforce itself picks faye's transport, and where the retry lives.
    client._dispatcher.retry = this.settings.streaming.retrySeconds;
    client.on('transport:down', () => gen === this.generation && log.warn('streaming connection down; faye keeps retrying'));
    client.on('transport:up', () => gen === this.generation && log.info('streaming connection up'));
    this.client = client;
    client.subscribe(this.channel, (message) => this.#onEvent(gen, message));
    // Acknowledgements and refusals are seen by the monitor extension: faye reports those of
    // its own re-subscriptions (after a re-handshake) to nobody.
  }

  /** A faye extension: sets the replay id of each subscribe, watches the meta channels. */
  #monitor(gen, replay) {
    return {
      outgoing: (message, callback) => {
        if (gen === this.generation && message.channel === '/meta/subscribe' && message.subscription === this.channel) {
          const from = this.#replayIdForSubscribe();
          replay.setReplay(from);
          if (this.firstSubscribeAt == null) this.firstSubscribeAt = this.sf.orgNow();
          log.info('subscribing', { channel: this.channel, replayFrom: from, checkpoint: this.checkpoint.value });
        }
        callback(message);
      },
      incoming: (message, callback) => {
        if (gen === this.generation) this.#onMeta(gen, message);
        callback(message);
      },
    };
  }

  #onMeta(gen, m) {
    switch (m.channel) {
      case '/meta/handshake':
        if (m.successful) log.info('handshake', { clientId: m.clientId });
        else if (isAuthFailure(m)) this.#rebuild(gen, 'handshake refused: session invalid', true);
        break;
      case '/meta/connect':
        if (m.successful === false) {
          if (isAuthFailure(m)) this.#rebuild(gen, 'connect refused: session invalid', true);
          else if (m.advice?.reconnect === 'handshake') log.warn('the server forgot our client; handshaking again', { error: m.error });
        }
        break;
      case '/meta/subscribe':
        if (m.subscription !== this.channel) break;
        if (m.successful) {
          this.replayOverride = null;
          log.info('subscription acknowledged', { channel: this.channel, clientId: m.clientId });
          if (!this.subscribedOnce) {
            this.subscribedOnce = true;
            process.stdout.write(`${READY_LINE}\n`);
          }
          if (this.resyncSince != null) this.#resync();
        } else if (isAuthFailure(m)) {
          this.#rebuild(gen, 'subscribe refused: session invalid', true);
        } else if (/^403::Unknown client/.test(m.error || '')) {
          // faye handshakes again and re-sends the subscription itself.
        } else if (/replayId/i.test(m.error || '') && this.replayOverride == null) {
          log.warn('our replay id is past retention: replaying what is retained and resyncing by query', { error: m.error });
          this.replayOverride = -2;
          this.resyncSince = (this.lastCommitMs ?? this.firstSubscribeAt ?? this.sf.orgNow()) - 5000;
          this.#rebuild(gen, 'replay id refused', false);
        } else {
          this.#rebuild(gen, `subscribe refused: ${m.error}`, false);
        }
        break;
      default:
    }
  }

  /** Drop the client and build a new one (logging in first when the session is the problem). */
  async #rebuild(gen, reason, relogin) {
    if (gen !== this.generation || this.rebuilding || this.stopped) return;
    this.rebuilding = true;
    this.generation += 1; // the old client's messages are ignored from now on
    const old = this.client;
    log.warn('renewing the streaming client', { reason });
    try {
      old?.disconnect();
    } catch {
      // a client that never connected has nothing to close
    }
    const [base, cap] = this.settings.streaming.rebuildBackoffMs;
    for (let attempt = 0; !this.stopped; attempt += 1) {
      if (attempt > 0) await sleep(Math.min(cap, base * 2 ** (attempt - 1)));
      try {
        if (relogin) await this.sf.login(`streaming: ${reason}`);
        this.#connect();
        break;
      } catch (err) {
        log.warn('cannot renew the streaming client yet', { error: err, attempt: attempt + 1 });
      }
    }
    this.rebuilding = false;
  }

  #onEvent(gen, message) {
    if (gen !== this.generation || this.stopped) return;
    const replayId = message?.event?.replayId;
    const payload = message?.payload;
    const header = payload?.ChangeEventHeader;
    if (replayId == null || !header) {
      log.warn('a message without replay id or change event header; skipped', { channel: this.channel });
      return;
    }
    if (!this.checkpoint.accept(replayId)) {
      this.stats.duplicates += 1;
      log.debug('event delivered again; already have it', { replayId });
      return;
    }
    if (header.commitTimestamp) this.lastCommitMs = header.commitTimestamp;
    // After a replay of everything retained (-2), what was written before we first
    // subscribed is not ours to prepare (another listener's, or before this one existed).
    const tooOld = header.commitTimestamp != null && header.commitTimestamp < this.firstSubscribeAt - 1000;
    // Only new appointments: our own Visit_Prep__c writes come back as UPDATE events.
    const wanted =
      header.changeType === 'CREATE' &&
      header.entityName === 'Event' &&
      !tooOld &&
      !payload.Visit_Prep__c &&
      header.commitUser !== this.sf.userId;
    const ids = wanted ? (header.recordIds || []).filter((id) => !this.handled.has(id)) : [];
    if (ids.length === 0) {
      this.stats.ignored += 1;
      this.checkpoint.finish(replayId);
      return;
    }
    let left = ids.length;
    for (const id of ids) {
      this.#remember(id);
      this.queue.push(async () => {
        try {
          await this.#prepare(id, payload, replayId);
        } finally {
          left -= 1;
          if (left === 0) this.checkpoint.finish(replayId);
        }
      });
    }
  }

  #remember(id) {
    this.handled.add(id);
    if (this.handled.size > MAX_HANDLED) this.handled.delete(this.handled.values().next().value);
  }

  /** Notes from the model, written into the Event. Never throws. */
  async #prepare(eventId, appointment, replayId) {
    const started = Date.now();
    try {
      const notes = await this.llm.notesFor(appointment);
      const outcome = await this.sf.writeVisitPrep(eventId, notes);
      if (outcome === 'written') this.stats.prepared += 1;
      else this.stats.already += 1;
      log.info('visit prepared', { event: eventId, replayId, outcome, ms: Date.now() - started });
    } catch (err) {
      this.stats.failed += 1;
      this.handled.delete(eventId); // a later resync may try it again
      log.error('could not prepare visit', { event: eventId, replayId, error: err instanceof GiveUp ? err.message : err });
    }
  }

  /** After a gap the stream cannot replay: Events created since, without notes, by query. */
  async #resync() {
    const since = this.resyncSince;
    this.resyncSince = null;
    try {
      const records = await this.sf.eventsCreatedSince(soqlDatetime(since));
      const todo = records.filter((r) => !r.Visit_Prep__c && !this.handled.has(r.Id) && r.CreatedById !== this.sf.userId);
      log.info('resync', { since: soqlDatetime(since), found: records.length, todo: todo.length });
      for (const r of todo) {
        this.#remember(r.Id);
        this.queue.push(() => this.#prepare(r.Id, r, null));
      }
    } catch (err) {
      log.error('resync failed; Events created during the gap may lack notes', { error: err });
    }
  }

  /** Stop listening; wait up to `ms` for visits being prepared. */
  async stop(ms) {
    this.stopped = true;
    this.generation += 1;
    try {
      this.client?.disconnect();
    } catch {
      // nothing to close
    }
    const drained = await this.queue.idle(ms);
    log.info('stopped', { ...this.stats, checkpoint: this.checkpoint.value, unfinished: drained ? 0 : this.queue.size });
  }
}
