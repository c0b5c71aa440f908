#!/usr/bin/env bash
# Installs what the three test tiers need on Debian (root): `make test`
# runs it first (make deps), and so does .ci/run. Idempotent: packages
# already installed and a cached lab kernel are left alone.
#
# qemu: the VM lab (the host kernel may have no IPVS); keepalived: VRRP
# interop and benchmark reference; ipvsadm: IPVS reference; rpm/cpio/file:
# RPM tests; xz-utils: unpacks the lab kernel for a faster boot;
# busybox-static: VM lab self-tests; kmod, iproute2, tcpdump: the
# namespace lab; systemd: systemd-analyze scores the unit (packaging tests);
# rpmlint, lintian: lint the RPM and the .deb (packaging tests); groff-base,
# man-db: check the man pages; zsh: loads the zsh completion (cmd/haldir).
# prometheus: promtool checks and unit-tests the alerting rules.
# frr: the BGP lab's upstream router (zebra, bgpd, bfdd, vtysh).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: not root; skipping the install (the namespace and VM tiers skip with a message)" >&2
  exit 0
fi
if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install-deps: no dpkg/apt-get (not Debian?); install by hand: qemu-system-x86 xz-utils busybox-static keepalived ipvsadm rpm cpio file kmod iproute2 tcpdump systemd rpmlint lintian groff-base man-db zsh prometheus frr" >&2
  exit 1
fi

pkgs=(qemu-system-x86 xz-utils busybox-static keepalived ipvsadm rpm cpio file kmod iproute2 tcpdump systemd rpmlint lintian groff-base man-db zsh prometheus frr)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "== installing test dependencies: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The frr package enables its own routers (zebra in the host's namespace)
# at install; the lab runs FRR only inside its namespaces. Only a copy this
# script installed is turned off: an FRR already there is the owner's.
if [[ " ${missing[*]} " == *" frr "* ]] && command -v systemctl >/dev/null; then
  systemctl disable --now frr.service >/dev/null 2>&1 || true
fi

# The Debian kernel the VM lab boots (a no-op when cached). The fetch asks
# apt for the kernel package: refresh stale lists and retry once.
GO=${GO:-go}
"$GO" run ./lab/cmd/vmkernel fetch >/dev/null || { apt-get update -qq && "$GO" run ./lab/cmd/vmkernel fetch >/dev/null; }
