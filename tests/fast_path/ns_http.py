#!/usr/bin/env python3
"""HTTP requests to ternd's metrics/admin endpoint from inside its namespace, for the fast path
test: one JSON request a line on standard input ({"method", "port", "path", "token", "body"}),
one JSON answer a line on standard output ({"status", "body"} or {"error"}). One process for the
whole test, so that polling a metric costs a round trip, not a process start."""

import http.client
import json
import sys


def main() -> int:
    for line in sys.stdin:
        try:
            req = json.loads(line)
            c = http.client.HTTPConnection("127.0.0.1", int(req["port"]), timeout=3)
            headers = {"Authorization": "Bearer " + req["token"]} if req.get("token") else {}
            body = req.get("body") or None
            if body:
                headers["Content-Type"] = "application/json"
            c.request(req["method"], req["path"], body=body, headers=headers)
            r = c.getresponse()
            out = {"status": r.status, "body": r.read().decode(errors="replace")}
            c.close()
        except Exception as e:  # reported to the test, which decides
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
