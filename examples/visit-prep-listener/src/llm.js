// Visit-preparation notes from the local model, through openai-node (OpenAI-compatible /v1).
//
// openai-node would retry by itself (2 retries, its own backoff); we set maxRetries: 0 and
// retry in our loop so the bound is ours, and send an honest X-Stainless-Retry-Count. Its
// `timeout` stops at the response headers, so each attempt also has an AbortSignal.

import OpenAI from 'openai';
import { log } from './log.js';
import { retrying, retryAfterMs } from './retry.js';

const SYSTEM_PROMPT =
  'You help a hospital outpatient clinic prepare visits. Given an appointment, write short ' +
  'preparation notes for the clinician: at most four bullet points, plain text, no patient ' +
  'identifiers beyond what you are given.';

export class LlmRefused extends Error {
  constructor(message) {
    super(message);
    this.name = 'LlmRefused';
  }
}

class AttemptTimeout extends Error {
  constructor(ms) {
    super(`the model did not answer within ${ms}ms`);
    this.name = 'AttemptTimeout';
  }
}

function classify(err) {
  if (err instanceof AttemptTimeout || err instanceof OpenAI.APIConnectionError) {
    return { retryable: true, kind: err.name };
  }
  if (err instanceof OpenAI.APIError && err.status != null) {
    if (err.status === 408 || err.status === 409 || err.status === 429 || err.status >= 500) {
      return { retryable: true, retryAfterMs: retryAfterMs(err.headers), kind: String(err.status) };
    }
    return { retryable: false, kind: String(err.status) };
  }
  if (err instanceof LlmRefused) return { retryable: true, kind: 'empty' }; // a fresh sample may do
  if (err instanceof TypeError || err?.name === 'SyntaxError') return { retryable: true, kind: 'cut' };
  return { retryable: false, kind: err?.name || 'error' };
}

export class VisitPrepWriter {
  constructor(settings, random) {
    this.settings = settings;
    this.random = random;
    this.client = new OpenAI({
      baseURL: settings.baseURL,
      apiKey: settings.apiKey,
      maxRetries: 0,
      timeout: settings.callTimeoutMs,
    });
  }

  /** A few lines of notes for the appointment (the CREATE event's fields). */
  async notesFor(appointment) {
    const lines = [
      `Appointment: ${appointment.Subject || '(no subject)'}`,
      `Starts: ${appointment.StartDateTime || '?'}; ends: ${appointment.EndDateTime || '?'}`,
    ];
    if (appointment.Location) lines.push(`Location: ${appointment.Location}`);
    if (appointment.Description) lines.push(`Details: ${String(appointment.Description).slice(0, 4000)}`);
    lines.push('Write the visit-preparation notes.');
    const params = {
      model: this.settings.model,
      messages: [
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: lines.join('\n') },
      ],
      max_tokens: this.settings.maxTokens,
      temperature: 0.2,
    };
    return retrying(
      'visit-prep notes',
      async (attempt) => {
        const ac = new AbortController();
        const ms = this.settings.callTimeoutMs;
        const timer = setTimeout(() => ac.abort(), ms);
        try {
          const completion = await this.client.chat.completions.create(params, {
            signal: ac.signal,
            headers: { 'X-Stainless-Retry-Count': String(attempt - 1) },
          });
          const text = (completion.choices?.[0]?.message?.content || '').trim();
          if (!text) throw new LlmRefused(`empty answer (finish_reason ${completion.choices?.[0]?.finish_reason})`);
          return text.slice(0, 31000);
        } catch (err) {
          if (ac.signal.aborted) throw new AttemptTimeout(ms);
          throw err;
        } finally {
          clearTimeout(timer);
        }
      },
      {
        maxAttempts: this.settings.maxAttempts,
        baseMs: 250,
        capMs: 2000,
        random: this.random,
        classify,
        onRetry: (attempt, wait, err) =>
          log.warn('the model failed; retrying', { attempt, waitMs: Math.round(wait), error: err }),
      },
    );
  }
}
