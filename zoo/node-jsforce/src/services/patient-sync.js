// POST /patients/{external_id}/sync: make sure the patient exists (upsert of the identity
// fields by external id), then update the contact details conditionally (If-Match), so that a
// clinician's edit made meanwhile is never overwritten.

import { config } from '../config.js';
import { Deadline } from '../resilience/deadline.js';
import { BadRequestError } from '../resilience/errors.js';
import { conditionalPatch } from './conditional.js';

export class PatientSyncService {
  constructor({ sf }) {
    this.sf = sf;
  }

  async sync(externalId, body) {
    const b = body ?? {};
    if (!externalId) throw new BadRequestError('missing external id');
    if (!b.last_name) throw new BadRequestError('invalid sync: last_name');
    const deadline = new Deadline(config.budgets.syncMs, 'patient sync');
    const identity = { Patient_External_Id__c: externalId, LastName: b.last_name };
    if (b.first_name) identity.FirstName = b.first_name;
    const up = await this.sf.upsert('Contact', 'Patient_External_Id__c', identity, { deadline });

    const desired = {};
    if (b.email !== undefined) desired.Email = b.email || null;
    if (b.phone !== undefined) desired.Phone = b.phone || null;
    if (b.language !== undefined) desired.Preferred_Language__c = b.language || null;
    const current = await this.sf.retrieveWithEtag(
      'Contact',
      up?.id ?? `Patient_External_Id__c/${encodeURIComponent(externalId)}`,
      { deadline },
    );
    if (!current) throw new Error(`patient ${externalId} upserted but not found`);
    const id = current.record.Id;

    if (!config.sync.conditional) {
      // Variant blind-overwrite: PATCH whatever differs, no If-Match.
      const changes = Object.fromEntries(
        Object.entries(desired).filter(([f, v]) => (current.record[f] ?? null) !== (v ?? null)),
      );
      if (Object.keys(changes).length) await this.sf.update('Contact', id, changes, { deadline });
      return { contact_id: id, created: Boolean(up?.created), written: Object.keys(changes), kept: [] };
    }

    const res = await conditionalPatch(this.sf, 'Contact', id, desired, current, {
      deadline,
      maxConflicts: config.sync.maxConflicts,
    });
    return { contact_id: id, created: Boolean(up?.created), ...res };
  }
}
