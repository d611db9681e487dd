// Conditional updates: PATCH with If-Match the ETag of the version we read; on 412 read
// again and go on with what is still ours to change. A field someone else changed since our
// first read is theirs: we leave it as they wrote it.

import { errorCodeOf } from '../salesforce/client.js';
import { ConflictError } from '../resilience/errors.js';
import { log } from '../log.js';

/**
 * @param {import('../salesforce/client.js').SalesforceClient} sf
 * @param {string} object
 * @param {string} id
 * @param {object} desired field -> value
 * @param {{record: object, etag: string|null}} current as read
 * @returns {Promise<{written: string[], kept: string[]}>}
 */
export async function conditionalPatch(sf, object, id, desired, current, { deadline, maxConflicts }) {
  const base = current.record;
  const kept = new Set();
  for (let round = 0; round <= maxConflicts; round++) {
    const changes = {};
    for (const [field, value] of Object.entries(desired)) {
      const now = current.record[field] ?? null;
      if (round > 0 && now !== (base[field] ?? null)) {
        kept.add(field); // changed by someone else since we read it
        continue;
      }
      if (now !== (value ?? null)) changes[field] = value;
    }
    if (Object.keys(changes).length === 0) return { written: [], kept: [...kept] };
    if (!current.etag) throw new Error(`${object} ${id} came without an ETag: cannot update it safely`);
    try {
      await sf.update(object, id, changes, { etag: current.etag, deadline });
      return { written: Object.keys(changes), kept: [...kept] };
    } catch (err) {
      if (errorCodeOf(err) !== 'PRECONDITION_FAILED') throw err;
      log.info('conditional update lost a race: reading again', { object, id, round });
      const fresh = await sf.retrieveWithEtag(object, id, { deadline });
      if (!fresh) throw new ConflictError(`${object} ${id} was deleted meanwhile`);
      current = fresh;
    }
  }
  throw new ConflictError(`${object} ${id} keeps changing under us; not updated`);
}
