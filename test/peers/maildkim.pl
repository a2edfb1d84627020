#!/usr/bin/perl
# Drives Mail::DKIM (the engine of DKIMproxy) for the interop tests.
#   maildkim.pl verify DNSPORT FILE...   one line per signature: FILE<TAB>result<TAB>domain<TAB>detail
#   maildkim.pl sign KEYFILE DOMAIN SELECTOR CANON FILE   prints the DKIM-Signature field
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::Signer;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!";
    local $/;
    my $m = <$fh>;
    close $fh;
    $m =~ s/\r?\n/\r\n/g;
    return $m;
}

my $mode = shift @ARGV;
if ($mode eq 'verify') {
    my $port = shift @ARGV;
    Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
        nameservers => ['127.0.0.1'], port => $port, udp_timeout => 3, tcp_timeout => 3, retry => 1));
    for my $file (@ARGV) {
        my $v = Mail::DKIM::Verifier->new();
        $v->PRINT(slurp($file));
        $v->CLOSE;
        my @sigs = $v->signatures;
        print join("\t", $file, 'none', '', 'no signatures'), "\n" unless @sigs;
        for my $sig (@sigs) {
            print join("\t", $file, $sig->result, $sig->domain // '', $sig->result_detail // ''), "\n";
        }
    }
} elsif ($mode eq 'sign') {
    my ($keyfile, $domain, $selector, $canon, $file) = @ARGV;
    my $s = Mail::DKIM::Signer->new(
        Algorithm => 'rsa-sha256', Method => $canon, Domain => $domain,
        Selector => $selector, KeyFile => $keyfile,
        Headers => 'from:to:cc:subject:date:message-id:mime-version:content-type:reply-to');
    $s->PRINT(slurp($file));
    $s->CLOSE;
    print $s->signature->as_string, "\r\n";
} else {
    die "usage: maildkim.pl verify PORT FILE... | sign KEY DOMAIN SELECTOR CANON FILE\n";
}
