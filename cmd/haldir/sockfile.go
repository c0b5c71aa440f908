package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/haldir-lb/haldir/conf"
)

// errNoControlSocket says the file disables the control socket.
var errNoControlSocket = errors.New(`global.control_socket = "" disables the control socket`)

// socketFromFile finds global.control_socket in a configuration file
// without requiring the file to be valid: `haldir reload -c FILE` (systemd's
// ExecReload) must reach the daemon precisely when the file on disk is
// broken, so that the daemon, which re-reads it, reports every error. A
// file that parses as TOML is read as TOML, whatever else is wrong with it;
// one that does not is scanned line by line for the key in [global]. When
// the key is not found, or the file cannot be read, the default socket is
// the answer and fallback says why.
func socketFromFile(path string) (socket, fallback string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return conf.DefaultControlSocket, fmt.Sprintf("reading %s for its control socket: %v", path, err), nil
	}
	var doc struct {
		Global struct {
			ControlSocket *string `toml:"control_socket"`
		} `toml:"global"`
	}
	var found *string
	if _, terr := toml.Decode(string(b), &doc); terr == nil {
		found = doc.Global.ControlSocket
	} else {
		found = scanControlSocket(string(b))
	}
	switch {
	case found == nil:
		return conf.DefaultControlSocket, "", nil
	case *found == "":
		return "", "", fmt.Errorf("%s: %w", path, errNoControlSocket)
	}
	return *found, "", nil
}

var (
	tableHeader = regexp.MustCompile(`^\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(#.*)?$`)
	// control_socket = "..." or '...', in [global] or dotted at the top.
	socketKey = regexp.MustCompile(`^\s*(global\s*\.\s*)?control_socket\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*')\s*(#.*)?$`)
)

// scanControlSocket finds global.control_socket in TOML that does not
// parse: the last assignment in [global] (or as global.control_socket
// before any table) whose value is a plain string.
func scanControlSocket(text string) *string {
	var found *string
	table := ""
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if m := tableHeader.FindStringSubmatch(line); m != nil {
			table = m[1]
			continue
		}
		m := socketKey.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		dotted := m[1] != ""
		if (dotted && table != "") || (!dotted && table != "global") {
			continue
		}
		v := m[2]
		if !utf8.ValidString(v) {
			continue // TOML is UTF-8; this is no path anyone wrote
		}
		if v[0] == '\'' {
			v = v[1 : len(v)-1]
		} else if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			continue
		}
		found = &v
	}
	return found
}
