#!/usr/bin/perl
# Mail::SPF (Debian libmail-spf-perl) as an oracle: the same input and output as spf_pyspf.py.
use strict;
use warnings;
use JSON::PP;
use Net::DNS::Resolver;
use Mail::SPF;

local $/;
my $request = decode_json(<STDIN>);
my ($host, $port) = $request->{server} =~ /^(.*):(\d+)$/;
my $resolver = Net::DNS::Resolver->new(nameservers => [$host], port => $port, recurse => 1, udp_timeout => 3, tcp_timeout => 3, retry => 1);
my $server = Mail::SPF::Server->new(dns_resolver => $resolver);
my @out;
for my $q (@{ $request->{queries} }) {
    my $null = $q->{mailFrom} eq '';
    my $req = Mail::SPF::Request->new(
        versions      => [1],
        scope         => $null ? 'helo' : 'mfrom',
        identity      => $null ? $q->{helo} : $q->{mailFrom},
        ip_address    => $q->{ip},
        helo_identity => $q->{helo},
    );
    push @out, $server->process($req)->code;
}
print encode_json(\@out), "\n";
