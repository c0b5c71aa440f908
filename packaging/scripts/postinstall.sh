#!/bin/sh
set -e
# haldir: after an install or an upgrade. One script for both packages:
#   RPM %post:     $1 = 1 on an install, 2 on an upgrade
#   deb postinst:  $1 = configure, $2 = the version replaced (empty on an
#                  install); abort-* leaves things as they were
#
# An install registers the unit and starts nothing: the operator first
# writes /etc/haldir/haldir.toml for this director.
#
# An upgrade restarts a running daemon onto the new binary only when the
# new binary accepts the installed configuration (haldir check). Before
# the restart it hands over (haldir maintenance on: every instance this
# director masters goes to a backup and it holds priority 1), so the
# restart is no failover; the new daemon starts in maintenance (kept in
# /var/lib/haldir) and is taken out of it once it runs. This is best
# effort: a daemon that does not know maintenance (an older version), one
# already in maintenance (the operator's: left as it is) or one that does
# not answer in time just restarts, as before. A stricter
# check or a key the new version dropped would otherwise stop the director:
# the unit's ExecStartPre check fails and no daemon runs at all. So a
# rejected file keeps the old daemon running, and that is said loudly on
# standard error (the operator's terminal) and in the journal (logger).
#
# HALDIR_SCRIPTLET_ROOT is for the package tests only: they run this script
# against an unpacked package with a fake systemctl on PATH.
root=${HALDIR_SCRIPTLET_ROOT:-}

upgrade=no
case "$1" in
configure) [ -n "${2:-}" ] && upgrade=yes ;;
[0-9]*) [ "$1" -ge 2 ] && upgrade=yes ;;
*) exit 0 ;;
esac

# Not booted with systemd (an image build, a chroot): no unit to reload.
[ -d "$root/run/systemd/system" ] || exit 0
systemctl daemon-reload >/dev/null 2>&1 || :
[ "$upgrade" = yes ] || exit 0
systemctl is-active --quiet haldir.service || exit 0

# The file the unit runs: HALDIR_CONFIG from the environment file, read
# in a subshell so nothing in it reaches this script.
conf=/etc/haldir/haldir.toml
for f in "$root/etc/sysconfig/haldir" "$root/etc/default/haldir"; do
	[ -r "$f" ] || continue
	v=$(. "$f" >/dev/null 2>&1; echo "${HALDIR_CONFIG:-}")
	[ -n "$v" ] && conf=$v
done

# The running daemon's control socket: the one the file names (the
# package tests' root has its own, never the host's).
sockflag=-c sockarg=$conf
[ -n "$root" ] && sockflag=-s sockarg=$root/run/haldir/haldir.sock

# haldir CMD... for the running daemon, bounded, its output discarded.
haldir_bounded() {
	timeout 20 "$root/usr/sbin/haldir" "$@" "$sockflag" "$sockarg" >/dev/null 2>&1
}

if out=$("$root/usr/sbin/haldir" check -c "$root$conf" 2>&1); then
	handoff=no
	if ! timeout 20 "$root/usr/sbin/haldir" status --json "$sockflag" "$sockarg" 2>/dev/null | tr -d ' \n' | grep -q '"maintenance":{"on":true'; then
		haldir_bounded maintenance on --reason "package upgrade" && handoff=yes
	fi
	if ! systemctl try-restart haldir.service; then
		msg="haldir: the restart onto the upgraded binary failed; see: systemctl status haldir"
		echo "$msg" >&2
		logger -t haldir -p daemon.err -- "$msg" 2>/dev/null || :
	fi
	if [ "$handoff" = yes ] && ! haldir_bounded maintenance off; then
		msg="haldir: still in maintenance after the upgrade (it could not be turned off); run: haldir maintenance off"
		echo "$msg" >&2
		logger -t haldir -p daemon.err -- "$msg" 2>/dev/null || :
	fi
	exit 0
fi

msg="haldir: NOT RESTARTED after the upgrade: the new /usr/sbin/haldir rejects $conf, so haldir.service keeps running the previous version. Do not restart it until the file passes 'haldir check -c $conf'; then run 'systemctl restart haldir'."
{
	echo
	echo "*** $msg"
	echo "$out" | sed 's/^/    /'
	echo
} >&2
logger -t haldir -p daemon.err -- "$msg" 2>/dev/null || :
echo "$out" | logger -t haldir -p daemon.err 2>/dev/null || :
exit 0
