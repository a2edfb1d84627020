#!/usr/bin/python3
"""Parses Authentication-Results fields (one per argument) with python3-authres
and prints, per field: authserv-id, then method=result and properties, one
result per line. A parse error exits non-zero."""
import sys

import authres

for field in sys.argv[1:]:
    header = authres.AuthenticationResultsHeader.parse(field)
    print(f'authserv-id {header.authserv_id}')
    for r in header.results:
        props = ' '.join(f'{p.type}.{p.name}={p.value}' for p in r.properties)
        reason = f' reason={r.reason}' if r.reason else ''
        print(f'{r.method}={r.result}{reason} {props}'.rstrip())
    print('--')
