// POST /appointments: book a visit.
//
//   1. upsert the patient (Contact by Patient_External_Id__c)      ┐
//   2. the practitioner's User Id (SOQL, cached)                    ├ in parallel
//   3. a visit-preparation note from the LLM (optional)             ┘
//   4. per practitioner, one at a time: no overlapping Event (SOQL), then the Event,
//      upserted by Booking_Key__c (idempotent: a re-send after a lost answer updates it).
//
// A failure after the Event write was tried compensates it (deletes the Event with this
// booking key, now or in the background). The patient's Contact is kept whatever happens:
// the patient record is the clinic's, not the booking's.

import { config } from '../config.js';
import { log } from '../log.js';
import { Deadline } from '../resilience/deadline.js';
import { BadRequestError, ConflictError } from '../resilience/errors.js';
import { KeyedMutex } from '../resilience/keyed-mutex.js';
import { soqlString } from '../salesforce/client.js';

const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/;
const SOQL_DATETIME = (s) => new Date(s).toISOString().replace('Z', '+0000');

function validate(body) {
  const b = body ?? {};
  const p = b.patient ?? {};
  const missing = [];
  if (!b.booking_key) missing.push('booking_key');
  if (!p.external_id) missing.push('patient.external_id');
  if (!p.last_name) missing.push('patient.last_name');
  if (!b.practitioner) missing.push('practitioner');
  if (!DATETIME.test(b.start ?? '')) missing.push('start');
  if (!DATETIME.test(b.end ?? '')) missing.push('end');
  if (missing.length) throw new BadRequestError(`invalid booking: ${missing.join(', ')}`);
  if (new Date(b.end) <= new Date(b.start)) throw new BadRequestError('invalid booking: end before start');
  return b;
}

export class BookingService {
  constructor({ sf, llm, compensator }) {
    this.sf = sf;
    this.llm = llm;
    this.compensator = compensator;
    this.practitioners = new Map(); // Username -> Promise<User Id>
    this.slots = new KeyedMutex();
  }

  async book(body) {
    const b = validate(body);
    const deadline = new Deadline(config.budgets.bookingMs, 'booking');
    const note = this.llm.visitNote(b, deadline.sub(config.budgets.bookingNoteMs, 'visit note'));
    const [contactId, ownerId] = await Promise.all([
      this.#upsertPatient(b, deadline),
      this.#practitionerId(b.practitioner, deadline),
    ]);
    const visitPrep = await note;
    return this.slots.run(ownerId, async () => {
      await this.#checkSlotFree(ownerId, b, deadline);
      const event = await this.#writeEvent(b, { contactId, ownerId, visitPrep }, deadline);
      return {
        booking_key: b.booking_key,
        event_id: event.id,
        contact_id: contactId,
        visit_prep: visitPrep ? 'included' : 'unavailable',
      };
    });
  }

  async #upsertPatient(b, deadline) {
    const p = b.patient;
    const record = {
      Patient_External_Id__c: p.external_id,
      FirstName: p.first_name,
      LastName: p.last_name,
      Birthdate: p.birthdate,
      Email: p.email,
      Preferred_Language__c: p.language,
      Data_Provenance__c: b.provenance,
    };
    for (const k of Object.keys(record)) if (record[k] == null || record[k] === '') delete record[k];
    const res = await this.sf.upsert('Contact', 'Patient_External_Id__c', record, { deadline });
    if (res?.id) return res.id;
    // An update answered 204 carries no id.
    const found = await this.sf.query(
      `SELECT Id FROM Contact WHERE Patient_External_Id__c = ${soqlString(p.external_id)}`,
      { deadline },
    );
    if (!found[0]) throw new Error('patient upserted but not found');
    return found[0].Id;
  }

  #practitionerId(username, deadline) {
    let pending = this.practitioners.get(username);
    if (!pending) {
      pending = this.sf
        .query(`SELECT Id FROM User WHERE Username = ${soqlString(username)} AND IsActive = true`, { deadline })
        .then((rows) => {
          if (!rows[0]) {
            this.practitioners.delete(username);
            throw new BadRequestError(`unknown practitioner ${username}`);
          }
          return rows[0].Id;
        });
      pending.catch(() => this.practitioners.delete(username));
      this.practitioners.set(username, pending);
    }
    return pending;
  }

  async #checkSlotFree(ownerId, b, deadline) {
    const rows = await this.sf.query(
      `SELECT Id, Booking_Key__c FROM Event WHERE OwnerId = ${soqlString(ownerId)}` +
        ` AND StartDateTime < ${SOQL_DATETIME(b.end)} AND EndDateTime > ${SOQL_DATETIME(b.start)}`,
      { deadline },
    );
    const others = rows.filter((r) => r.Booking_Key__c !== b.booking_key);
    if (others.length) {
      throw new ConflictError(`practitioner already booked in this slot (${others.map((r) => r.Id).join(', ')})`);
    }
  }

  async #writeEvent(b, { contactId, ownerId, visitPrep }, deadline) {
    const record = {
      Booking_Key__c: b.booking_key,
      WhoId: contactId,
      OwnerId: ownerId,
      StartDateTime: b.start,
      EndDateTime: b.end,
      Subject: `Visit: ${b.patient.first_name ?? ''} ${b.patient.last_name}`.trim(),
    };
    if (visitPrep) {
      record.Visit_Prep__c = [
        visitPrep.summary,
        ...visitPrep.questions.map((q) => `- ${q}`),
      ].join('\n');
    }
    // Did any attempt possibly land? A timeout, a lost answer or a 5xx may have; a row lock or
    // another 4xx refusal did not.
    let mayHaveLanded = false;
    const onAttemptError = (c) => {
      if (c.unknown || c.outcome === 'failure') mayHaveLanded = true;
    };
    try {
      if (config.booking.idempotentEventWrite) {
        return await this.sf.upsert('Event', 'Booking_Key__c', record, { deadline, onAttemptError });
      }
      // Variant non-idempotent-create: POST a new Event (and retry the POST).
      return await this.sf.create('Event', record, { deadline, onAttemptError });
    } catch (err) {
      if (!mayHaveLanded) throw err;
      if (config.booking.compensate) {
        // Some attempt may have landed: make sure no Event with this key is left.
        await this.compensator.compensate(b.booking_key);
      } else {
        log.info('booking failed, not compensating (variant)', { booking_key: b.booking_key });
      }
      throw err;
    }
  }
}
