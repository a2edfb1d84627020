#!/usr/bin/perl
# Parses each argument (a whole Authentication-Results field) with
# Mail::AuthenticationResults and prints its method=result words, one per
# line, then "--". A field that does not parse exits non-zero.
use strict;
use warnings;
use Mail::AuthenticationResults::Parser;

for my $field (@ARGV) {
    (my $value = $field) =~ s/^Authentication-Results:\s*//i;
    $value =~ s/\r\n/\n/g;
    my $parsed = Mail::AuthenticationResults::Parser->new()->parse($value);
    for my $entry (@{ $parsed->children() }) {
        next unless ref($entry) eq 'Mail::AuthenticationResults::Header::Entry';
        print $entry->key(), '=', $entry->value(), "\n";
    }
    print "--\n";
}
