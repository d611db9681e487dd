// St Elsewhere visit preparation: a Change Data Capture listener between Salesforce and the
// local LLM. New appointments (Event records) arrive on /data/EventChangeEvent; each one gets
// short preparation notes from the model, written into its Visit_Prep__c field.
//
// No HTTP port: a worker. It prints one line, `visit-prep-listener: subscribed`, on stdout
// once the subscription is acknowledged, and logs to stderr. SIGTERM or Ctrl-C: stop
// listening, finish the visits being prepared (up to 3 s), exit 0.
//
// Settings come from the environment (crashcart's SUT contract); LISTENER_VARIANT picks a
// build (`correct`, or the broken `loses-events-on-reconnect`).

import { loadSettings } from './config.js';
import { VisitPrepListener } from './listener.js';
import { VisitPrepWriter } from './llm.js';
import { log } from './log.js';
import { seededRandom } from './retry.js';
import { Salesforce } from './salesforce.js';

const STOP_GRACE_MS = 3000;

async function main() {
  const settings = loadSettings();
  const random = seededRandom(settings.seed);
  let stopping = false;
  let listener = null;

  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    if (listener) await listener.stop(STOP_GRACE_MS);
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  log.info('starting', { variant: settings.variant, channel: settings.channel, model: settings.llm.model, concurrency: settings.concurrency });
  const sf = new Salesforce(settings.salesforce, random);
  try {
    await sf.firstLogin(() => stopping);
  } catch (err) {
    log.error('Salesforce refused our login', { error: err });
    process.exit(1);
  }
  if (stopping) return;
  const llm = new VisitPrepWriter(settings.llm, random);
  listener = new VisitPrepListener(settings, sf, llm);
  listener.start();
}

process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: err }));

main().catch((err) => {
  log.error('crashed', { error: err, stack: err?.stack });
  process.exit(1);
});
