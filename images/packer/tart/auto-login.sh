#!/bin/bash
# Automatic login of $EKIDEN_LOGIN_USER (as root): loginwindow's autoLoginUser plus
# /etc/kcpassword, the login password XORed with Apple's fixed kcpassword key and padded to a
# multiple of 12 bytes. The password is the image's documented default (admin), not a secret.
set -euo pipefail
: "${EKIDEN_LOGIN_USER:?}" "${EKIDEN_LOGIN_PASSWORD:?}"
EKIDEN_LOGIN_PASSWORD="$EKIDEN_LOGIN_PASSWORD" perl -e '
  my @key = (0x7D, 0x89, 0x52, 0x23, 0xD2, 0xBC, 0xDD, 0xEA, 0xA3, 0xB9, 0x1F);
  my @p = map { ord } split //, $ENV{EKIDEN_LOGIN_PASSWORD};
  my $len = (int(@p / 12) + 1) * 12;
  my $out = "";
  for my $i (0 .. $len - 1) { $out .= chr((($i < @p) ? $p[$i] : 0) ^ $key[$i % @key]); }
  print $out;
' >/etc/kcpassword
chmod 0600 /etc/kcpassword
defaults write /Library/Preferences/com.apple.loginwindow autoLoginUser "$EKIDEN_LOGIN_USER"
