// The local model through openai-node.
//
// openai-node retries by itself (2 retries by default, honouring Retry-After, and sending
// `x-stainless-retry-count`). We set maxRetries: 0 and retry in our own loop instead, because
// every attempt must pass the circuit breaker: the library's retries would keep calling a
// model the breaker has given up on. Our attempts still send an honest
// `x-stainless-retry-count`. The library's `timeout` only runs until the response headers
// (a stream's first token can come much later), so each attempt also has an AbortSignal
// covering the whole answer.

import OpenAI from 'openai';
import { config } from '../config.js';
import { log } from '../log.js';
import { parseRetryAfter } from '../resilience/backoff.js';
import { CircuitBreaker } from '../resilience/breaker.js';
import { Deadline } from '../resilience/deadline.js';
import { AttemptTimeoutError, DependencyUnavailableError } from '../resilience/errors.js';
import { breakerGate, retrying } from '../resilience/retry.js';

const llmConfig = config.llm;

const VISIT_NOTE_SCHEMA = {
  type: 'object',
  properties: {
    summary: { type: 'string', description: 'two or three sentences for the clinician' },
    questions: {
      type: 'array',
      items: { type: 'string' },
      description: 'questions to ask the patient at the visit',
    },
  },
  required: ['summary', 'questions'],
  additionalProperties: false,
};

export class LlmClient {
  constructor() {
    this.client = new OpenAI({
      baseURL: llmConfig.baseURL,
      apiKey: llmConfig.apiKey,
      maxRetries: 0,
      ...(llmConfig.callTimeoutMs != null ? { timeout: llmConfig.callTimeoutMs } : {}),
    });
    this.breaker = new CircuitBreaker('llm', config.breaker);
  }

  classify(err) {
    if (err instanceof AttemptTimeoutError || err instanceof OpenAI.APIConnectionTimeoutError) {
      return { retryable: true, outcome: 'failure', kind: 'timeout' };
    }
    if (err instanceof OpenAI.APIConnectionError) {
      return { retryable: true, outcome: 'failure', kind: 'network' };
    }
    if (err instanceof OpenAI.APIError && err.status != null) {
      const retryAfterMs = parseRetryAfter(err.headers);
      if (err.status === 429 || err.status === 408 || err.status >= 500) {
        return { retryable: true, outcome: 'failure', retryAfterMs, kind: String(err.status) };
      }
      return { retryable: false, outcome: 'neutral', kind: String(err.status) };
    }
    // A stream cut mid-answer surfaces from undici as TypeError("terminated").
    if (err instanceof TypeError || err?.code === 'ECONNRESET' || err?.name === 'SyntaxError') {
      return { retryable: true, outcome: 'failure', kind: 'cut' };
    }
    return { retryable: false, outcome: 'neutral', kind: 'other' };
  }

  /** One chat completion, retried; `consume` reads the answer inside the attempt's timeout. */
  async #chat(what, params, consume, deadline) {
    return retrying(
      what,
      async ({ attempt }) => {
        const ms = llmConfig.callTimeoutMs == null ? null : Math.min(llmConfig.callTimeoutMs, deadline.remaining());
        const ac = new AbortController();
        const timer = ms == null ? null : setTimeout(() => ac.abort(), ms);
        try {
          const answer = await this.client.chat.completions.create(params, {
            signal: ac.signal,
            headers: { 'X-Stainless-Retry-Count': String(attempt - 1) },
          });
          return await consume(answer);
        } catch (err) {
          if (ac.signal.aborted) throw new AttemptTimeoutError(what, ms);
          throw err;
        } finally {
          if (timer) clearTimeout(timer);
        }
      },
      {
        deadline,
        maxAttempts: llmConfig.maxAttempts,
        gates: [breakerGate(this.breaker)],
        classify: (err) => {
          const c = this.classify(err);
          log.debug('llm attempt failed', { what, kind: c.kind, message: err.message });
          return c;
        },
      },
    );
  }

  /**
   * A visit-preparation note `{summary, questions}`, or null when the model fails or answers
   * something unusable (the booking goes on without it).
   */
  async visitNote({ patient, practitioner, start, end }, deadline = Deadline.none()) {
    const prompt = [
      `Prepare a short note for an upcoming visit.`,
      `Patient: ${patient.first_name} ${patient.last_name}, born ${patient.birthdate}, preferred language ${patient.language}.`,
      `Practitioner: ${practitioner}. Slot: ${start} to ${end}.`,
      `Answer as JSON with a summary and a list of questions to ask.`,
    ].join('\n');
    let content;
    try {
      content = await this.#chat(
        'llm.visit_note',
        {
          model: llmConfig.model,
          messages: [
            { role: 'system', content: 'You help a clinic prepare patient visits. Be brief and factual.' },
            { role: 'user', content: prompt },
          ],
          response_format: {
            type: 'json_schema',
            json_schema: { name: 'visit_prep', strict: true, schema: VISIT_NOTE_SCHEMA },
          },
          max_tokens: 300,
          temperature: 0.2,
        },
        async (completion) => completion.choices?.[0]?.message?.content ?? '',
        deadline,
      );
    } catch (err) {
      log.info('visit note unavailable', { reason: err.name, message: err.message });
      return null;
    }
    const note = parseVisitNote(content);
    if (!note) log.info('visit note unusable', { content: String(content).slice(0, 200) });
    return note;
  }

  /** A summary of case notes (streamed), or null when the model fails. */
  async summarize(notes, deadline = Deadline.none()) {
    try {
      const text = await this.#chat(
        'llm.summary',
        {
          model: llmConfig.model,
          stream: true,
          messages: [
            { role: 'system', content: 'Summarise clinical case notes for a busy clinician in two sentences.' },
            { role: 'user', content: notes },
          ],
          max_tokens: 200,
          temperature: 0.2,
        },
        async (stream) => {
          let out = '';
          for await (const chunk of stream) out += chunk.choices?.[0]?.delta?.content ?? '';
          return out.trim();
        },
        deadline,
      );
      return text || null;
    } catch (err) {
      if (err instanceof DependencyUnavailableError) {
        log.info('summary unavailable', { reason: err.reason });
      } else {
        log.info('summary unavailable', { reason: err.name, message: err.message });
      }
      return null;
    }
  }
}

/** The note out of the model's answer: plain JSON, JSON in prose or in a code fence. */
export function parseVisitNote(content) {
  if (typeof content !== 'string') return null;
  const candidates = [];
  const fence = /```(?:json)?\s*([\s\S]*?)```/i.exec(content);
  if (fence) candidates.push(fence[1]);
  candidates.push(content);
  const first = content.indexOf('{');
  const last = content.lastIndexOf('}');
  if (first >= 0 && last > first) candidates.push(content.slice(first, last + 1));
  for (const c of candidates) {
    let value;
    try {
      value = JSON.parse(c.trim());
    } catch {
      continue;
    }
    if (
      value &&
      typeof value === 'object' &&
      typeof value.summary === 'string' &&
      value.summary.trim() &&
      Array.isArray(value.questions) &&
      value.questions.every((q) => typeof q === 'string')
    ) {
      return { summary: value.summary.trim(), questions: value.questions };
    }
  }
  return null;
}
