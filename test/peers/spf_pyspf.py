#!/usr/bin/python3
"""pyspf (Debian python3-spf, the RFC 7208 reference implementation) as an oracle:
reads {"server": "127.0.0.1:PORT", "queries": [{"ip","mailFrom","helo"}]} on stdin,
prints one result word per query, as a JSON list."""
import json, sys
import dns.resolver
import spf

request = json.load(sys.stdin)
host, port = request["server"].rsplit(":", 1)
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [host]
resolver.port = int(port)
resolver.timeout = resolver.lifetime = 3
dns.resolver.default_resolver = resolver
out = []
for q in request["queries"]:
    # check2 gives RFC 7208's result words (check() is RFC 4408's: "unknown" for permerror).
    result, _explanation = spf.check2(i=q["ip"], s=q["mailFrom"] or ("postmaster@" + q["helo"]), h=q["helo"])
    out.append(result)
print(json.dumps(out))
