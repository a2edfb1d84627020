#!/usr/bin/perl
# Mail::DKIM's ARC (Debian libmail-dkim-perl) as an oracle, keys asked of the test DNS server.
#   arc_maildkim.pl verify PORT FILE...   one line per file: FILE<TAB>result<TAB>detail
#   arc_maildkim.pl seal PORT KEY DOMAIN SELECTOR SRVID FILE   prints the new ARC set
use strict;
use warnings;
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

my ($mode, $port) = (shift @ARGV, shift @ARGV);
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, udp_timeout => 3, tcp_timeout => 3, retry => 1));
if ($mode eq 'verify') {
    for my $file (@ARGV) {
        my $v = Mail::DKIM::ARC::Verifier->new(Strict => 1);
        $v->PRINT(slurp($file));
        $v->CLOSE;
        print join("\t", $file, $v->result, $v->result_detail // ''), "\n";
    }
} elsif ($mode eq 'seal') {
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
    die "usage: arc_maildkim.pl verify PORT FILE... | seal PORT KEY DOMAIN SELECTOR SRVID FILE\n";
}
