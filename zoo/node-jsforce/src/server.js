// The booking integration's HTTP service (crashcart's SUT contract).

import express from 'express';
import { config } from './config.js';
import { log } from './log.js';
import { LlmClient } from './llm/client.js';
import { DependencyUnavailableError } from './resilience/errors.js';
import { SalesforceClient, errorCodeOf } from './salesforce/client.js';
import { BookingService } from './services/booking.js';
import { CaseSummaryService } from './services/case-summary.js';
import { Compensator } from './services/compensation.js';
import { PatientSyncService } from './services/patient-sync.js';

const sf = new SalesforceClient();
const llm = new LlmClient();
const compensator = new Compensator(sf);
const booking = new BookingService({ sf, llm, compensator });
const patients = new PatientSyncService({ sf });
const cases = new CaseSummaryService({ sf, llm });

/** HTTP status for a failed operation: every failure means "it did not happen". */
function statusFor(err) {
  if (err.httpStatus) return err.httpStatus;
  if (err instanceof DependencyUnavailableError) return 503;
  const code = errorCodeOf(err);
  if (code === 'REQUEST_LIMIT_EXCEEDED') return 503;
  if (err.name === 'AbortError' || err.name === 'FetchError' || err.name === 'AttemptTimeoutError') return 503;
  if (typeof err.message === 'string' && err.message.startsWith('Unable to refresh session')) return 503;
  if ((err.salesforceStatus ?? 0) >= 500) return 503;
  return 502; // Salesforce refused the request
}

function handler(name, fn) {
  return async (req, res) => {
    const started = Date.now();
    const op = req.get('x-crashcart-op');
    const subject = req.body?.patient?.external_id ?? req.params.externalId;
    try {
      const result = await fn(req);
      res.status(name === 'book' ? 201 : 200).json(result);
      log.info('ok', { op, name, subject, ms: Date.now() - started });
    } catch (err) {
      const status = statusFor(err);
      res.status(status).json({ error: err.name, code: errorCodeOf(err), message: err.message });
      log.warn('failed', { op, name, subject, status, error: errorCodeOf(err), message: err.message, ms: Date.now() - started });
    }
  };
}

const app = express();
app.disable('x-powered-by');
app.use(express.json({ limit: '256kb' }));

app.get('/health', (req, res) => {
  if (sf.ready) res.json({ status: 'ok', variant: config.variant });
  else res.status(503).json({ status: 'starting' });
});

app.post('/appointments', handler('book', (req) => booking.book(req.body)));
app.post('/patients/:externalId/sync', handler('sync', (req) => patients.sync(req.params.externalId, req.body)));
app.post('/cases/:externalId/summarize', handler('summarize', (req) => cases.summarize(req.params.externalId, req.body)));

app.use((err, req, res, next) => {
  // Body parse errors and the like.
  if (res.headersSent) return next(err);
  res.status(err.status ?? 400).json({ error: err.name, message: err.message });
});

const server = app.listen(config.port, '127.0.0.1', () => {
  log.info('listening', { port: config.port, variant: config.variant });
});
server.keepAliveTimeout = 30_000;

sf.start().then(
  () => log.info('salesforce ready', { instanceUrl: sf.conn.instanceUrl, version: sf.conn.version }),
  (err) => {
    log.error('salesforce start-up failed', { error: err.message });
    process.exit(1);
  },
);

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log.info('shutting down', { signal, pendingCompensations: compensator.pending.size });
  server.close();
  await compensator.drain(3000);
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
