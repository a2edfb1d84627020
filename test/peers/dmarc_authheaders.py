#!/usr/bin/python3
"""ValiMail's authheaders (Debian python3-authheaders) as a DMARC oracle.
Reads {"server": "127.0.0.1:PORT", "cases": [{"file","ip","mailFrom","helo"}]}
on stdin; for each case runs authenticate_message() with SPF, DKIM and DMARC
(pyspf and dkimpy underneath), all DNS asked of the test server, and prints
a JSON list of {"dmarc", "policy", "spf", "dkim", "header"}."""
import json, sys
import authheaders
import authres
from testdns import use_test_server

request = json.load(sys.stdin)
resolver = use_test_server(request["server"])


def dnsfunc(name, timeout=5):
    """TXT of a name as one string (dkimpy and authheaders' DMARC lookup both call this); None when there is none."""
    if isinstance(name, bytes):
        name = name.decode("ascii")
    try:
        answer = resolver.resolve(name.rstrip("."), "TXT")
    except Exception:
        return None
    for rr in answer:
        return b"".join(rr.strings).decode("latin1")
    return None


out = []
for case in request["cases"]:
    with open(case["file"], "rb") as f:
        msg = f.read()
    header = authheaders.authenticate_message(
        msg, "oracle.test", spf=True, dkim=True, dmarc=True,
        ip=case["ip"], mail_from=case["mailFrom"], helo=case["helo"], dnsfunc=dnsfunc)
    parsed = authres.AuthenticationResultsHeader.parse(header)
    found = {r.method: r for r in parsed.results}
    dmarc = found.get("dmarc")
    out.append({
        "dmarc": dmarc.result if dmarc else None,
        "policy": next((p.value for p in dmarc.properties if p.type == "policy" and p.name == "dmarc"), None) if dmarc else None,
        "spf": found["spf"].result if "spf" in found else None,
        "dkim": found["dkim"].result if "dkim" in found else None,
        "header": header,
    })
print(json.dumps(out))
