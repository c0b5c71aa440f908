#!/bin/sh
# Register the unit; never start haldir on install: the operator must first
# edit /etc/haldir/haldir.toml for this director.
systemctl daemon-reload >/dev/null 2>&1 || :
