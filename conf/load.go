package conf

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where haldir looks for its configuration.
const DefaultPath = "/etc/haldir/haldir.toml"

// FieldError is one problem found in a configuration file.
type FieldError struct {
	File string // as given to Parse or Load
	Line int    // 1-based; 0 when unknown
	Path string // indexed key path, e.g. virtual_server[1].real_server[0].weight; "" for syntax errors
	Msg  string
}

// Error formats the problem as "file:line: path: msg"; the line and the path
// are left out when unknown.
func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration file. Load and Parse
// return it (as error) whenever the file was read but is not a valid
// configuration.
type Errors []FieldError

// Error prints one problem per line, sorted by line number.
func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es.sorted() {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

func (es Errors) sorted() Errors {
	out := append(Errors(nil), es...)
	sort.SliceStable(out, func(i, j int) bool {
		li, lj := out[i].Line, out[j].Line
		if li == 0 {
			li = int(^uint(0) >> 1)
		}
		if lj == 0 {
			lj = int(^uint(0) >> 1)
		}
		return li < lj
	})
	return out
}

// Load reads and parses the file at path. A file that cannot be read gives
// an error that is not Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes, defaults and validates a configuration. filename is only
// used in error messages. Any error it returns is of type Errors.
//
// Syntax errors stop parsing and are reported alone. Otherwise every unknown
// key, wrong type and semantic problem is reported at once.
func Parse(data []byte, filename string) (*Config, error) {
	d := &document{file: filename, set: map[string]bool{}}

	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, d.syntaxError(err)
	}
	d.lines = keyLines(data)

	// Check keys and types ourselves first: the decoder stops at the first
	// mismatch and cannot say which array element it was in.
	var root Config
	d.typecheck(raw, typeOfConfig, "")
	if len(d.errs) > 0 {
		return nil, d.errs
	}

	md, err := toml.Decode(string(data), &root)
	if err != nil {
		// typecheck is meant to catch everything the decoder rejects;
		// report whatever slipped through rather than hide it.
		d.add("", "%v", err)
		return nil, d.errs
	}
	for _, k := range md.Undecoded() {
		d.add(k.String(), "unknown key")
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}

	applyDefaults(&root, d.isSet)
	validate(&root, d)
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return &root, nil
}

// document carries what is known about the file while checking it.
type document struct {
	file  string
	lines map[string]int  // indexed key path -> line
	set   map[string]bool // indexed key paths present in the file
	errs  Errors
}

func (d *document) isSet(path string) bool { return d.set[path] }

// line finds the line of path, or of its nearest ancestor in the file.
func (d *document) line(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := d.lines[p]; ok {
			return l
		}
	}
	return 0
}

func (d *document) add(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{File: d.file, Line: d.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *document) syntaxError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Errors{{File: d.file, Line: pe.Position.Line, Msg: "syntax error: " + pe.Message}}
	}
	return Errors{{File: d.file, Msg: "syntax error: " + err.Error()}}
}
