#!/bin/sh
set -e
# HALDIR_SCRIPTLET_ROOT: for the package tests only (see postinstall.sh).
# haldir: before the package's files go. One script for both packages:
#   RPM %preun:   $1 = 0 on an erase, 1 on an upgrade
#   deb prerm:    $1 = remove, upgrade, deconfigure or failed-upgrade
# On an erase (not an upgrade) stop the daemon so a master hands its VIPs
# over gracefully (priority 0) before the binary disappears. An upgrade
# leaves it running: postinstall restarts it when the new binary accepts
# the configuration.
case "$1" in
0 | remove | deconfigure)
	[ -d "${HALDIR_SCRIPTLET_ROOT:-}/run/systemd/system" ] || exit 0
	systemctl --no-reload disable --now haldir.service >/dev/null 2>&1 || :
	;;
esac
exit 0
