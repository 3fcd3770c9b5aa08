#!/usr/bin/env python3
"""Python baseline of the benchmark (lae-bench runs it): what a straightforward `requests`
script does with the same pages. Exchanges the key for a token, walks the range in windows,
follows nextPage, and writes every record back as one JSON line. Prints
{"records": N, "requests": M} on stdout.

usage: baseline.py --base-url URL --key-id ID --secret S --from-ms A --to-ms B
                   --window-ms W --out FILE
"""

import argparse
import datetime
import json
import sys

import requests


def fmt(ms):
    """yyyy-MM-ddTHH:mm:ss.SSSZ, a query time format the API accepts."""
    t = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def main():
    p = argparse.ArgumentParser()
    for name in ("--base-url", "--key-id", "--secret", "--out"):
        p.add_argument(name, required=True)
    for name in ("--from-ms", "--to-ms", "--window-ms"):
        p.add_argument(name, required=True, type=int)
    a = p.parse_args()

    session = requests.Session()
    requests_made = 0
    r = session.post(
        a.base_url + "/api/v2/access/tokens",
        headers={"X-LW-UAKS": a.secret},
        json={"keyId": a.key_id, "expiryTime": 3600},
    )
    r.raise_for_status()
    requests_made += 1
    headers = {"Authorization": "Bearer " + r.json()["token"], "Org-Access": "true"}

    records = 0
    with open(a.out, "w", encoding="utf-8") as out:
        start = a.from_ms
        while start < a.to_ms:
            end = min(start + a.window_ms, a.to_ms)
            # The API's bounds are inclusive: stop 1 ms before the next window.
            url = a.base_url + "/api/v2/AuditLogs"
            params = {"startTime": fmt(start), "endTime": fmt(end - 1)}
            while url:
                r = session.get(url, headers=headers, params=params)
                r.raise_for_status()
                requests_made += 1
                params = None
                if not r.content.strip():
                    break
                page = r.json() or {}
                data = page.get("data") or []
                for record in data:
                    out.write(json.dumps(record))
                    out.write("\n")
                records += len(data)
                url = ((page.get("paging") or {}).get("urls") or {}).get("nextPage")
            start = end

    json.dump({"records": records, "requests": requests_made}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
