"""A small system under test for crashcart's end-to-end tests, following the SUT contract.

POST /appointments books a visit: it logs in (OAuth password grant), upserts the patient as a
Contact by external id, and creates the Event with its booking key. On INVALID_SESSION_ID it
logs in again and retries once, unless started with --no-refresh (a seeded defect).
Connection errors and timeouts answer 503. GET /health answers 200.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

NO_REFRESH = "--no-refresh" in sys.argv
BASE = os.environ["SALESFORCE_LOGIN_URL"]
VERSION = os.environ["SALESFORCE_API_VERSION"]
LOCK = threading.Lock()
STATE = {"token": None, "instance": None}


def login():
    r = requests.post(
        f"{BASE}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": os.environ["SALESFORCE_CLIENT_ID"],
            "client_secret": os.environ["SALESFORCE_CLIENT_SECRET"],
            "username": os.environ["SALESFORCE_USERNAME"],
            "password": os.environ["SALESFORCE_PASSWORD"],
        },
        timeout=2,
    )
    r.raise_for_status()
    body = r.json()
    STATE["token"], STATE["instance"] = body["access_token"], body["instance_url"]


def call(method, path, body):
    with LOCK:
        if STATE["token"] is None:
            login()
    for attempt in range(2):
        token = STATE["token"]
        r = requests.request(method, f"{STATE['instance']}/services/data/v{VERSION}{path}", json=body,
                             headers={"Authorization": f"Bearer {token}"}, timeout=2)
        if r.status_code == 401 and attempt == 0 and not NO_REFRESH:
            with LOCK:
                if STATE["token"] == token:  # single flight: only one thread logs in again
                    login()
            continue
        return r
    return r


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("toy-sut: " + fmt % args + "\n")

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200 if self.path == "/health" else 404, {"ok": self.path == "/health"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        try:
            p = body["patient"]
            r = call("PATCH", f"/sobjects/Contact/Patient_External_Id__c/{p['external_id']}",
                     {"FirstName": p["first_name"], "LastName": p["last_name"]})
            if r.status_code not in (200, 201, 204):
                return self.answer(502, {"step": "contact", "status": r.status_code})
            who = r.json()["id"] if r.status_code in (200, 201) else None
            if who is None:
                q = call("GET", f"/sobjects/Contact/Patient_External_Id__c/{p['external_id']}", None)
                who = q.json()["Id"]
            r = call("POST", "/sobjects/Event", {"Subject": "Visit", "WhoId": who, "StartDateTime": body["start"],
                                                  "EndDateTime": body["end"], "Booking_Key__c": body["booking_key"]})
            if r.status_code != 201:
                return self.answer(502, {"step": "event", "status": r.status_code})
            self.answer(201, {"id": r.json()["id"]})
        except (requests.ConnectionError, requests.Timeout) as e:
            self.answer(503, {"error": type(e).__name__})


print(f"toy-sut listening on {os.environ['PORT']} (no-refresh={NO_REFRESH})", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
