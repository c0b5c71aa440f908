#!/bin/sh
# rpmlint with this repository's configuration (packaging/rpmlint.toml),
# safely: rpmlint unpacks a package with `rpm2cpio | cpio -id` in a
# temporary directory, and nfpm writes the payload's paths absolute
# (/usr/sbin/haldir, not ./usr/sbin/haldir), which GNU cpio then writes to
# the host's own / (as root: over /etc/haldir, /usr/sbin/haldir...). A cpio
# first on PATH that adds --no-absolute-filenames keeps them in rpmlint's
# directory.
#   usage: packaging/rpmlint.sh dist/haldir-*.rpm
set -eu
here=$(cd "$(dirname "$0")" && pwd)
real=$(command -v cpio) || { echo "rpmlint.sh: no cpio" >&2; exit 2; }
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
printf '#!/bin/sh\nexec %s --no-absolute-filenames "$@"\n' "$real" >"$shim/cpio"
chmod 0755 "$shim/cpio"
PATH="$shim:$PATH" rpmlint -c "$here/rpmlint.toml" "$@"
