#!/usr/bin/perl
# Drives Mail::DKIM (the engine of DKIMproxy) for the interop tests.
#   maildkim.pl verify DNSPORT FILE...   one line per signature: FILE<TAB>result<TAB>domain<TAB>detail
#   maildkim.pl sign KEYFILE DOMAIN SELECTOR CANON FILE   prints the DKIM-Signature field
#   maildkim.pl arc-verify DNSPORT FILE...   ARC: one line per file: FILE<TAB>result<TAB>detail
#   maildkim.pl arc-seal DNSPORT KEY DOMAIN SELECTOR SRVID FILE   prints the new ARC set
#     (the chain's state from FILE's Authentication-Results of SRVID: Chain => 'ar')
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::Signer;
use Mail::DKIM::ARC::Verifier;
use Mail::DKIM::ARC::Signer;
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

sub use_test_dns {
    my ($port) = @_;
    Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
        nameservers => ['127.0.0.1'], port => $port, udp_timeout => 3, tcp_timeout => 3, retry => 1));
}

my $mode = shift @ARGV;
if ($mode eq 'verify') {
    use_test_dns(shift @ARGV);
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
} elsif ($mode eq 'arc-verify') {
    use_test_dns(shift @ARGV);
    for my $file (@ARGV) {
        my $v = Mail::DKIM::ARC::Verifier->new(Strict => 1);
        $v->PRINT(slurp($file));
        $v->CLOSE;
        print join("\t", $file, $v->result, $v->result_detail // ''), "\n";
    }
} elsif ($mode eq 'arc-seal') {
    use_test_dns(shift @ARGV);
    my ($keyfile, $domain, $selector, $srvid, $file) = @ARGV;
    my $s = Mail::DKIM::ARC::Signer->new(
        Algorithm => 'rsa-sha256', Domain => $domain, SrvId => $srvid,
        Selector => $selector, KeyFile => $keyfile, Chain => 'ar',
        Headers => 'from:to:subject:date:message-id', Timestamp => time());
    $s->PRINT(slurp($file));
    $s->CLOSE;
    die 'Mail::DKIM did not seal: ' . ($s->result_detail // $s->result) . "\n" unless $s->result eq 'sealed';
    print map { "$_\r\n" } $s->as_strings;
} else {
    die "usage: see the comment at the top\n";
}
