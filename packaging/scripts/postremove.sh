#!/bin/sh
systemctl daemon-reload >/dev/null 2>&1 || :
# $1 >= 1: upgrade: restart a running daemon onto the new binary. haldir
# adopts the existing IPVS table at start, so this resets no connection.
if [ "$1" -ge 1 ] 2>/dev/null; then
  systemctl try-restart haldir.service >/dev/null 2>&1 || :
fi
