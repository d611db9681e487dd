"""Drive crashcart's mock Salesforce with simple-salesforce, unmodified.

simple-salesforce always logs in at https://login.salesforce.com (SOAP). The only thing this
script changes is *where that name points*: a requests transport adapter sends requests for
login.salesforce.com to the mock, the effect of a hosts-file entry. Everything after login
uses the serverUrl the mock returned, as with the real service. TLS is verified against the
mock's certificate (REQUESTS_CA_BUNDLE).

Prints one JSON object describing what the client saw; the Rust test checks it and the
mock's own history.
"""

import argparse
from datetime import datetime, timedelta, timezone
import json
import sys

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError


class PointLoginAtMock(requests.adapters.HTTPAdapter):
    """Rewrites https://login.salesforce.com to the mock's base URL."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def send(self, request, **kwargs):
        request.url = request.url.replace("https://login.salesforce.com", self.target, 1)
        return super().send(request, **kwargs)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True, help="mock base URL, https://127.0.0.1:PORT")
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--external-id", required=True)
    args = p.parse_args()

    session = requests.Session()
    session.mount("https://login.salesforce.com", PointLoginAtMock(args.base))
    sf = Salesforce(
        username=args.username,
        password=args.password,
        security_token=args.token,
        session=session,
        version="59.0",
    )
    out = {"instance": sf.sf_instance, "session_before": sf.session_id[:15]}

    # Replication polling over the last hour (the Rust test wrote records in it).
    end = datetime.now(timezone.utc)
    start = end - timedelta(hours=1)
    out["updated"] = sf.Contact.updated(start, end)
    out["deleted"] = sf.Contact.deleted(start, end)

    created = sf.Contact.create(
        {"FirstName": "Ada", "LastName": "Synthetic", "Patient_External_Id__c": args.external_id}
    )
    out["created"] = created

    soql = (
        "SELECT Id, FirstName, LastName, Patient_External_Id__c FROM Contact "
        f"WHERE Patient_External_Id__c = '{args.external_id}'"
    )
    out["query"] = sf.query(soql)

    out["search"] = sf.search("FIND {Synthetic} RETURNING Contact(Id, LastName)")["searchRecords"]
    out["quick_search"] = len(sf.quick_search("Synthetic")["searchRecords"])
    out["aggregate"] = sf.query(
        "SELECT COUNT(Id) n FROM Contact WHERE CreatedDate = LAST_N_DAYS:1"
    )["records"][0]["n"]
    tree = {"records": [{"attributes": {"type": "Account", "referenceId": "clinic"}, "Name": "North Clinic",
                         "Contacts": {"records": [{"attributes": {"type": "Contact", "referenceId": "p1"},
                                                   "LastName": "Tree"}]}}]}
    out["tree"] = sf.restful("composite/tree/Account", method="POST", json=tree)
    batch = {"batchRequests": [{"method": "GET", "url": f"v59.0/sobjects/Contact/{created['id']}?fields=LastName"}]}
    out["batch"] = sf.restful("composite/batch", method="POST", json=batch)
    graph = {"graphs": [{"graphId": "g1", "compositeRequest": [
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "a", "body": {"Name": "Graph"}},
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "c",
         "body": {"LastName": "Graphed", "AccountId": "@{a.id}"}}]}]}
    out["graph"] = sf.restful("composite/graph", method="POST", json=graph)
    out["update_status"] = sf.Contact.update(created["id"], {"FirstName": "Grace"})
    out["after_update"] = sf.Contact.get(created["id"])
    usage = sf.api_usage.get("api-usage")
    out["api_usage"] = [usage.used, usage.total] if usage else None

    # The mock expires every session now; the next call must hit INVALID_SESSION_ID and the
    # client must log in again by itself.
    expired = requests.post(args.base + "/__crashcart/sessions/expire", json={}).json()
    out["expired"] = expired["expired"]
    old_session = sf.session_id
    out["query_after_expiry"] = sf.query(soql)
    out["relogged_in"] = sf.session_id != old_session

    # A bad query surfaces as the client's typed error with Salesforce's code.
    try:
        sf.query("SELECT Id FRM Contact")
        out["malformed"] = None
    except SalesforceError as e:
        out["malformed"] = {"status": e.status, "content": e.content}

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
