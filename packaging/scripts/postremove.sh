#!/bin/sh
set -e
# HALDIR_SCRIPTLET_ROOT: for the package tests only (see postinstall.sh).
# haldir: after the package's files went (erase), or after the old
# version's files went (upgrade). One script for both packages (RPM
# %postun: $1 = 0 erase, 1 upgrade; deb postrm: remove, purge, upgrade...).
# It restarts nothing: on an upgrade the new version's postinstall has
# already restarted the daemon, if the new binary accepts the configuration.
[ -d "${HALDIR_SCRIPTLET_ROOT:-}/run/systemd/system" ] || exit 0
systemctl daemon-reload >/dev/null 2>&1 || :
exit 0
