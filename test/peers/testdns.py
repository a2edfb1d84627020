"""dnspython pointed at the test DNS server ("127.0.0.1:PORT"), and made the
default resolver, which pyspf (and so authheaders' SPF check) asks through."""
import dns.resolver


def use_test_server(server):
    host, port = server.rsplit(":", 1)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)
    resolver.timeout = resolver.lifetime = 3
    dns.resolver.default_resolver = resolver
    return resolver
