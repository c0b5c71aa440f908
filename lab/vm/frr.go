package vm

import (
	"fmt"
	"os"
	"path/filepath"
)

// FRRDataDir holds the YANG modules FRRouting's daemons load at start.
const FRRDataDir = "/usr/share/yang"

// FRRFiles returns what the BGP lab's FRRouting needs in the guest: the
// daemons (zebra, bgpd, bfdd, staticd) and vtysh with their libraries
// (libfrr comes from their RUNPATH), and the YANG modules. The guest's
// default /etc/passwd and /etc/group hold the frr user and the frrvty
// group the daemons check for. It fails when frr is not installed.
func FRRFiles() ([]File, error) {
	var files []File
	for _, b := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/lib/frr/bfdd", "/usr/lib/frr/staticd", "/usr/bin/vtysh"} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("vm: FRRouting for the guest: %w (apt-get install frr)", err)
		}
		files = append(files, File{Host: b, Guest: b, WithLibs: true})
	}
	if _, err := os.Stat(filepath.Join(FRRDataDir, "frr-routing.yang")); err != nil {
		return nil, fmt.Errorf("vm: FRRouting's YANG modules for the guest: %w (apt-get install frr)", err)
	}
	return append(files, File{Host: FRRDataDir, Guest: FRRDataDir}), nil
}
