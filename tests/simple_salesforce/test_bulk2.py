"""Drives sfsim's Bulk API 2.0 with simple-salesforce's ``bulk2``, unchanged: a query read
page by page (``Sforce-Locator``, ``Sforce-NumberOfRecords``, ``maxRecords``) and an upsert by
external id whose results are matched by key.

simple-salesforce builds every URL as ``https://{instance}/...``, and its password login goes
to ``https://{domain}.salesforce.com``, so it cannot reach a plain-HTTP sfsim by itself. The
test logs in with sfsim's OAuth username-password flow, hands simple-salesforce the token as
``session_id`` with ``instance_url``, and passes it a ``requests`` session (a documented
constructor argument) whose https adapter sends each request over http to the same host and
port. The library's code is unchanged.

Starts its own ``sfsim`` (the binary built by ``cargo build``; override with SFSIM_BIN) on a
free loopback port, and stops it at the end. Run: ``python -m unittest -v test_bulk2``.
"""

import csv
import io
import json
import os
import socket
import subprocess
import time
import unittest
import urllib.request
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce

HERE = Path(__file__).resolve().parent
SFSIM = os.environ.get("SFSIM_BIN") or str(HERE.parent.parent / "target" / "debug" / "sfsim")
VERSION = "62.0"


class PlainHttpAdapter(HTTPAdapter):
    """Sends https:// requests to the same host and port over plain http (sfsim has no TLS)."""

    def send(self, request, **kwargs):  # pylint: disable=arguments-differ
        if request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://"):]
        return super().send(request, **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bulk2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        port = free_port()
        cls.base = f"http://127.0.0.1:{port}"
        cls.child = subprocess.Popen(
            [SFSIM, "--org", f"A=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{cls.base}/__sim/users", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"sfsim did not come up at {cls.base}")
        cls.control("/__sim/schema", {"object": "Opportunity", "name": "Ext__c",
                                      "type": "string", "externalId": True, "unique": True})
        token = requests.post(f"{cls.base}/services/oauth2/token", data={
            "grant_type": "password",
            "client_id": "sfsim-client",
            "client_secret": "sfsim-secret",
            "username": "integration@a.sim",
            "password": "passwordtoken",
        }, timeout=10).json()
        session = requests.Session()
        session.mount("https://", PlainHttpAdapter())
        cls.sf = Salesforce(
            instance_url=token["instance_url"].replace("http://", "https://", 1),
            session_id=token["access_token"],
            version=VERSION,
            session=session,
        )

    @classmethod
    def tearDownClass(cls):
        cls.child.terminate()
        cls.child.wait(timeout=10)

    @classmethod
    def control(cls, path, body=None):
        if body is None:
            r = requests.get(cls.base + path, timeout=30)
        else:
            r = requests.post(cls.base + path, data=json.dumps(body),
                              headers={"content-type": "application/json"}, timeout=30)
        assert r.ok, f"{path}: {r.status_code} {r.text}"
        return r.json()

    @staticmethod
    def opportunity(name, **extra):
        return {"Name": name, "StageName": "Prospecting", "CloseDate": "2026-12-31", **extra}

    def test_query_pages_by_locator(self):
        total = 1200
        self.control("/__sim/records", {"object": "Opportunity", "records": [
            self.opportunity(f"SQ {i:05}", Amount=i) for i in range(total)]})
        pages = list(self.sf.bulk2.Opportunity.query(
            "SELECT Id, Name, Amount FROM Opportunity WHERE Name LIKE 'SQ %'",
            max_records=500, wait=0.1))
        self.assertEqual(len(pages), 3)
        rows = []
        for page in pages:
            self.assertTrue(page.startswith('"Id","Name","Amount"'), page[:80])
            rows.extend(csv.DictReader(io.StringIO(page)))
        self.assertEqual(len(rows), total)
        self.assertEqual({r["Name"] for r in rows}, {f"SQ {i:05}" for i in range(total)})
        stats = self.control("/__sim/stats")
        self.assertEqual(stats["calls"]["bulk_query_create"], 1)
        self.assertEqual(stats["calls"]["bulk_results"], 3)

    def test_upsert_by_external_id(self):
        seeded = self.control("/__sim/records", {"object": "Opportunity", "records": [
            self.opportunity(f"SU {i}", Ext__c=f"S-{i}") for i in range(10)]})["results"]
        records = [self.opportunity(f"SU new {i}", Ext__c=f"S-{i}") for i in range(25)]
        summary = self.sf.bulk2.Opportunity.upsert(
            records=records, external_id_field="Ext__c", wait=0.1)
        self.assertEqual(len(summary), 1)
        self.assertEqual(summary[0]["numberRecordsProcessed"], 25)
        self.assertEqual(summary[0]["numberRecordsFailed"], 0)
        job_id = summary[0]["job_id"]
        ok = list(csv.DictReader(io.StringIO(self.sf.bulk2.Opportunity.get_successful_records(job_id))))
        self.assertEqual(len(ok), 25)
        by_key = {r["Ext__c"]: r for r in ok}
        for i in range(25):
            row = by_key[f"S-{i}"]
            self.assertEqual(row["sf__Created"], "true" if i >= 10 else "false")
            self.assertEqual(row["Name"], f"SU new {i}")
            if i < 10:
                self.assertEqual(row["sf__Id"], seeded[i]["id"])
        failed = self.sf.bulk2.Opportunity.get_failed_records(job_id)
        self.assertEqual(list(csv.DictReader(io.StringIO(failed))), [])
        got = self.sf.query("SELECT Name FROM Opportunity WHERE Ext__c = 'S-3'")
        self.assertEqual(got["records"][0]["Name"], "SU new 3")


if __name__ == "__main__":
    unittest.main()
