#!/usr/bin/python3
"""dkimpy's ARC (Debian python3-dkim) as an oracle, keys asked of the test DNS server.

  arc_dkimpy.py verify SERVER FILE...      one line per file: FILE<TAB>cv<TAB>comment
  arc_dkimpy.py seal SERVER KEY DOMAIN SELECTOR SRVID FILE
        prints the new ARC set (AS, AMS, AAR) dkimpy makes, from FILE's
        Authentication-Results of SRVID; nothing when dkimpy ends the chain.
"""
import re
import sys

import dkim
from testdns import use_test_server


def read(path):
    with open(path, 'rb') as f:
        return re.sub(rb'\r?\n', b'\r\n', f.read())


def main():
    mode, server = sys.argv[1], sys.argv[2]
    resolver = use_test_server(server)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name.rstrip('.'), 'TXT')
        except Exception:
            return None
        for rr in answer:
            return b''.join(rr.strings)
        return None

    if mode == 'verify':
        for path in sys.argv[3:]:
            try:
                cv, _results, comment = dkim.arc_verify(read(path), dnsfunc=dnsfunc)
            except Exception as e:  # dkimpy raises for some broken chains: that is a fail
                cv, comment = b'fail', str(e)
            word = cv.decode() if cv is not None else 'fail'
            print(f'{path}\t{word}\t{comment}')
    elif mode == 'seal':
        keyfile, domain, selector, srvid, path = sys.argv[3:8]
        key = open(keyfile, 'rb').read()
        fields = dkim.arc_sign(read(path), selector.encode(), domain.encode(), key, srvid.encode(),
                               include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
        sys.stdout.buffer.write(b''.join(fields))
    else:
        sys.exit('usage: see the module docstring')


if __name__ == '__main__':
    main()
