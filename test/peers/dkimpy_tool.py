#!/usr/bin/python3
"""Drives dkimpy for the interop tests.

  dkimpy_tool.py verify DNSPORT FILE...   one line per signature: FILE<TAB>pass|fail<TAB>index
  dkimpy_tool.py sign KEYFILE DOMAIN SELECTOR CANON ALGORITHM FILE   prints the DKIM-Signature field
"""
import base64
import re
import sys

import dkim
import dns.resolver


def read(path):
    with open(path, 'rb') as f:
        return re.sub(rb'\r?\n', b'\r\n', f.read())


def main():
    mode = sys.argv[1]
    if mode == 'verify':
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = ['127.0.0.1']
        res.port = int(sys.argv[2])
        res.lifetime = 3

        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            try:
                answer = res.resolve(name, 'TXT')
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                return None
            return b''.join(answer[0].strings)

        for path in sys.argv[3:]:
            msg = read(path)
            count = len(re.findall(rb'^DKIM-Signature:', msg.split(b'\r\n\r\n', 1)[0], re.I | re.M))
            if count == 0:
                print(f'{path}\tnone\t-')
            for idx in range(count):
                d = dkim.DKIM(msg)
                try:
                    ok = d.verify(idx=idx, dnsfunc=dnsfunc)
                except dkim.DKIMException as e:
                    ok = False
                    print(f'# {path} {idx}: {e}', file=sys.stderr)
                print(f"{path}\t{'pass' if ok else 'fail'}\t{idx}")
    elif mode == 'sign':
        keyfile, domain, selector, canon, algorithm, path = sys.argv[2:8]
        key = open(keyfile, 'rb').read()
        if algorithm == 'ed25519-sha256':
            # dkimpy wants the raw 32-byte seed, base64; ours is PKCS#8 PEM (seed = last 32 octets of the DER).
            der = base64.b64decode(b''.join(l for l in key.splitlines() if not l.startswith(b'-----')))
            key = base64.b64encode(der[-32:])
        header, body = canon.split('/')
        sig = dkim.sign(read(path), selector.encode(), domain.encode(), key,
                        canonicalize=(header.encode(), body.encode()),
                        signature_algorithm=algorithm.encode(),
                        include_headers=[b'from', b'to', b'subject', b'date', b'message-id', b'mime-version', b'content-type'])
        sys.stdout.buffer.write(sig)
    else:
        sys.exit('usage: see the module docstring')


if __name__ == '__main__':
    main()
