// POST /cases/{external_id}/summarize: find or create the Case, summarise its notes with the
// LLM, and write AI_Summary__c conditionally. When the model fails, answer with a degraded
// summary and write nothing.

import { config } from '../config.js';
import { Deadline } from '../resilience/deadline.js';
import { BadRequestError } from '../resilience/errors.js';
import { soqlString } from '../salesforce/client.js';
import { conditionalPatch } from './conditional.js';

function degradedSummary(notes) {
  const first = String(notes).split(/(?<=[.!?])\s+/)[0] ?? '';
  return first.length > 280 ? `${first.slice(0, 277)}...` : first;
}

export class CaseSummaryService {
  constructor({ sf, llm }) {
    this.sf = sf;
    this.llm = llm;
  }

  async summarize(externalId, body) {
    const b = body ?? {};
    if (!externalId) throw new BadRequestError('missing case external id');
    if (!b.notes) throw new BadRequestError('invalid summary request: notes');
    const deadline = new Deadline(config.budgets.summaryMs, 'case summary');
    const rows = await this.sf.query(
      `SELECT Id FROM Case WHERE Case_External_Id__c = ${soqlString(externalId)}`,
      { deadline },
    );
    let caseId = rows[0]?.Id;
    if (!caseId) {
      const res = await this.sf.upsert(
        'Case',
        'Case_External_Id__c',
        { Case_External_Id__c: externalId, Subject: b.subject, Description: b.notes },
        { deadline },
      );
      caseId = res?.id;
    }

    const summary = await this.llm.summarize(b.notes, deadline.sub(config.budgets.summaryLlmMs, 'summary'));
    if (!summary) {
      return { case_id: caseId ?? null, degraded: true, summary: degradedSummary(b.notes) };
    }
    const current = await this.sf.retrieveWithEtag(
      'Case',
      caseId ?? `Case_External_Id__c/${encodeURIComponent(externalId)}`,
      { deadline },
    );
    if (!current) throw new Error(`case ${externalId} not found after upsert`);
    const res = await conditionalPatch(this.sf, 'Case', current.record.Id, { AI_Summary__c: summary }, current, {
      deadline,
      maxConflicts: config.sync.maxConflicts,
    });
    return { case_id: current.record.Id, degraded: false, summary, ...res };
  }
}
