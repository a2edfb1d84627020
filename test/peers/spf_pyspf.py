#!/usr/bin/python3
"""pyspf (Debian python3-spf, the RFC 7208 reference implementation) as an oracle:
reads {"server": "127.0.0.1:PORT", "queries": [{"ip","mailFrom","helo"}]} on stdin,
prints one result word per query, as a JSON list."""
import json, sys
import spf
from testdns import use_test_server

request = json.load(sys.stdin)
use_test_server(request["server"])
out = []
for q in request["queries"]:
    # check2 gives RFC 7208's result words (check() is RFC 4408's: "unknown" for permerror).
    result, _explanation = spf.check2(i=q["ip"], s=q["mailFrom"] or ("postmaster@" + q["helo"]), h=q["helo"])
    out.append(result)
print(json.dumps(out))
