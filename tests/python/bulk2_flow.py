"""Drive crashcart's mock Bulk API 2.0 with simple-salesforce's own `bulk2` methods.

Logs in as simple_salesforce_flow.py does (login.salesforce.com pointed at the mock), then:
inserts patients with one bad row, reads the failed and successful records back, upserts by
external id, and runs a bulk query paged by max_records.

Prints one JSON object; the Rust test checks it against the mock's own records.
"""

import argparse
import csv
import io
import json
import sys

import requests
from simple_salesforce import Salesforce

from simple_salesforce_flow import PointLoginAtMock


def rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--count", type=int, default=250)
    a = p.parse_args()
    session = requests.Session()
    session.mount("https://login.salesforce.com", PointLoginAtMock(a.base))
    sf = Salesforce(
        username=a.username,
        password=a.password,
        security_token=a.token,
        session=session,
        version="59.0",
    )
    patients = [
        {"FirstName": f"Pat{i}", "LastName": f"Bulk{i:04d}", "Patient_External_Id__c": f"CC-BULK-{i}"}
        for i in range(a.count)
    ]
    patients.append({"FirstName": "No last name", "LastName": "", "Patient_External_Id__c": "CC-BULK-X"})
    out = {}
    inserted = sf.bulk2.Contact.insert(records=patients, wait=0.05)
    out["insert"] = inserted
    job = inserted[0]["job_id"]
    out["failed"] = rows(sf.bulk2.Contact.get_failed_records(job))
    out["successful"] = len(rows(sf.bulk2.Contact.get_successful_records(job)))
    changed = [{"Patient_External_Id__c": "CC-BULK-0", "FirstName": "Grace"},
               {"Patient_External_Id__c": "CC-BULK-NEW", "FirstName": "Alan", "LastName": "New"}]
    out["upsert"] = sf.bulk2.Contact.upsert(
        records=changed, external_id_field="Patient_External_Id__c", wait=0.05
    )
    pages = list(
        sf.bulk2.Contact.query(
            "SELECT Id, FirstName, LastName FROM Contact WHERE LastName LIKE 'Bulk%' ORDER BY LastName",
            max_records=100,
            wait=0.05,
        )
    )
    out["query_pages"] = len(pages)
    records = [r for page in pages for r in rows(page)]
    out["query_count"] = len(records)
    out["query_first"] = records[0] if records else None
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
