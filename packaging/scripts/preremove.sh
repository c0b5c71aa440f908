#!/bin/sh
# $1 == 0: package erase (not upgrade): stop the daemon so a master hands
# its VIPs over gracefully (priority 0) before the binary disappears.
if [ "$1" = 0 ]; then
  systemctl --no-reload disable --now haldir.service >/dev/null 2>&1 || :
fi
