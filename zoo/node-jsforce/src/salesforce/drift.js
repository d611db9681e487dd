// Schema drift: the org stops accepting a field (renamed, removed, type changed) or a picklist
// value. Optional fields are dropped from then on, and the request is sent again without them;
// a field we cannot do without is not optional, and its refusal is the caller's error.

import { log } from '../log.js';

// Fields a record can be written without (the write still means something).
const OPTIONAL = {
  Contact: new Set(['Email', 'Birthdate', 'Preferred_Language__c', 'Data_Provenance__c', 'Phone', 'FirstName']),
  Event: new Set(['Subject', 'Visit_Prep__c', 'Description']),
  Case: new Set(['Subject', 'Description']),
};

const FIELD_CODES = new Set(['INVALID_FIELD', 'INVALID_TYPE', 'INVALID_FIELD_FOR_INSERT_UPDATE', 'INVALID_TYPE_ON_FIELD_IN_RECORD']);
const PICKLIST_CODES = new Set(['INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', 'BAD_VALUE_FOR_RESTRICTED_PICKLIST']);

export class Drift {
  constructor() {
    this.dropped = new Map(); // object -> Set(field)
    this.withdrawn = new Map(); // `${object}.${field}` -> Set(value)
  }

  /** The record as the org accepts it today. */
  apply(object, record) {
    const dropped = this.dropped.get(object);
    const out = {};
    for (const [k, v] of Object.entries(record)) {
      if (dropped?.has(k)) continue;
      if (v != null && this.withdrawn.get(`${object}.${k}`)?.has(v)) continue;
      out[k] = v;
    }
    return out;
  }

  /**
   * Learn from a refusal of `sent`. True when something was dropped, so that sending again
   * can succeed.
   */
  learn(object, err, sent) {
    const code = err?.errorCode || err?.name;
    const fields = new Set(Array.isArray(err?.data?.fields) ? err.data.fields : []);
    const m = /No such column '([^']+)'/.exec(err?.message ?? '');
    if (m) fields.add(m[1]);
    const optional = OPTIONAL[object] ?? new Set();
    let learnt = false;
    if (FIELD_CODES.has(code)) {
      for (const f of fields) {
        if (optional.has(f) && f in sent) {
          if (!this.dropped.has(object)) this.dropped.set(object, new Set());
          this.dropped.get(object).add(f);
          log.warn('schema drift: field refused, dropping it', { object, field: f, error: code });
          learnt = true;
        }
      }
    } else if (PICKLIST_CODES.has(code)) {
      for (const f of fields) {
        if (optional.has(f) && sent[f] != null) {
          const key = `${object}.${f}`;
          if (!this.withdrawn.has(key)) this.withdrawn.set(key, new Set());
          this.withdrawn.get(key).add(sent[f]);
          log.warn('schema drift: picklist value refused, leaving it out', { object, field: f, value: sent[f] });
          learnt = true;
        }
      }
    }
    return learnt;
  }
}
