// Package keepalived reads a keepalived.conf and turns it into a haldir
// configuration, saying for every directive it cannot carry over where it
// is and why: the way in for users who switch from keepalived.
package keepalived

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Node is one keepalived directive: a keyword, its arguments and, for a
// block (`keyword args { ... }`), its children.
type Node struct {
	Name     string
	Args     []string
	Children []*Node
	Block    bool
	File     string
	Line     int
}

func (n *Node) where() string { return fmt.Sprintf("%s:%d", n.File, n.Line) }

// parseWarning names the nodes that carry what the parser itself has to
// say (a conditional line evaluated for a guessed config id, an include
// that matches nothing): Args[0] is the message. They come first among the
// top-level nodes, and Convert turns them into warnings. No directive can
// have this name: "#" starts a comment.
const parseWarning = "#warning"

// maxInclude bounds nested includes.
const maxInclude = 8

// maxExpansions bounds the parameter substitutions of one line, so that a
// definition that refers to itself is an error, not a hang.
const maxExpansions = 1000

// maxBraces bounds the brace expressions of an include pattern (each one
// multiplies the patterns).
const maxBraces = 10

// maxLines bounds the lines one line expands into (multiline definitions,
// ~SEQ).
const maxLines = 100000

// maxLine bounds a line after substitution (keepalived: its line buffer).
const maxLine = 64 << 10

// Options are what keepalived takes from its command line and environment
// while it reads the file, which the importer cannot take from the
// director it runs for.
type Options struct {
	// ConfigID is keepalived's -i/--config-id: the NAME of `@NAME` and
	// `@^NAME` lines and ${_INSTANCE}. Empty means keepalived's default,
	// the first part of this host's name, said in a warning when it
	// decides a line.
	ConfigID string
	// Defines are parameters defined before the file is read (as if by
	// `$NAME=VALUE` lines at its top; the file's own definitions replace
	// them), and the values of ${_ENV NAME} ahead of this host's
	// environment.
	Defines map[string]string
	// LookupEnv reads the environment for ${_ENV NAME}; nil is
	// os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// ParseFile reads path and the files it includes, with default Options.
func ParseFile(path string) ([]*Node, error) {
	return ParseFileOptions(path, Options{})
}

// ParseFileOptions reads path and the files it includes.
func ParseFileOptions(path string, o Options) ([]*Node, error) {
	p := newParser(o, true)
	if err := p.readFile(path, 0); err != nil {
		return nil, err
	}
	return p.finish()
}

// Parse reads a configuration held in memory; include is refused.
func Parse(src, name string) ([]*Node, error) {
	return ParseOptions(src, name, Options{})
}

// ParseOptions reads a configuration held in memory; include is refused.
func ParseOptions(src, name string, o Options) ([]*Node, error) {
	p := newParser(o, false)
	if err := p.read(src, name, 0); err != nil {
		return nil, err
	}
	return p.finish()
}

// parser reads keepalived's configuration language as keepalived's
// lib/parser.c does: line by line, where each line is decommented, kept
// or dropped by its `@NAME` condition, taken as a `$NAME=` definition or
// has its parameters substituted, and may be an include; braces then
// build the blocks, across included files.
type parser struct {
	o         Options
	includes  bool
	configID  string
	defs      map[string]*definition
	mdef      *definition // a multiline definition being read
	warnings  []*Node
	warned    map[string]bool
	root      *Node
	stack     []*Node
	last      *Node // the last directive, which a lone "{" opens
	lookupEnv func(string) (string, bool)
}

// definition is a `$NAME=VALUE` parameter; a multiline one has a line per
// element.
type definition struct {
	lines     []string
	multiline bool
}

func newParser(o Options, includes bool) *parser {
	p := &parser{o: o, includes: includes, defs: map[string]*definition{}, warned: map[string]bool{}, root: &Node{Block: true}, lookupEnv: o.LookupEnv}
	p.stack = []*Node{p.root}
	if p.lookupEnv == nil {
		p.lookupEnv = os.LookupEnv
	}
	p.configID = o.ConfigID
	if p.configID == "" {
		h, _ := os.Hostname()
		p.configID, _, _ = strings.Cut(h, ".")
	}
	for k, v := range o.Defines {
		p.defs[k] = &definition{lines: []string{v}}
	}
	return p
}

func (p *parser) finish() ([]*Node, error) {
	if len(p.stack) > 1 {
		open := p.stack[len(p.stack)-1]
		return nil, fmt.Errorf("%s:%d: block %q is never closed", open.File, open.Line, open.Name)
	}
	return append(p.warnings, p.root.Children...), nil
}

// warnOnce records a parser warning, once per key.
func (p *parser) warnOnce(key, file string, line int, format string, a ...any) {
	if p.warned[key] {
		return
	}
	p.warned[key] = true
	p.warnings = append(p.warnings, &Node{Name: parseWarning, Args: []string{fmt.Sprintf(format, a...)}, File: file, Line: line})
}

func (p *parser) readFile(path string, depth int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return p.read(string(b), path, depth)
}

// pending is a line made by a multiline definition or a ~SEQ, read before
// the next line of the file; set, when given, defines a parameter first.
type pending struct {
	text     string
	set, val string
}

func (p *parser) read(src, file string, depth int) error {
	if depth > maxInclude {
		return fmt.Errorf("%s: includes nested deeper than %d", file, maxInclude)
	}
	for i, raw := range strings.Split(src, "\n") {
		line := i + 1
		text, cont, err := decomment(strings.TrimRight(raw, "\r"))
		if err != nil {
			return fmt.Errorf("%s:%d: %v", file, line, err)
		}
		if p.mdef != nil {
			// A multiline definition goes on while its lines end in "\".
			if text != "" {
				p.mdef.lines = append(p.mdef.lines, strings.TrimRight(text, " \t"))
			}
			if !cont {
				p.mdef = nil
			}
			continue
		}
		if cont {
			text += `\`
		}
		queue := []pending{{text: text}}
		for steps := 0; len(queue) > 0; steps++ {
			if steps > maxLines {
				return fmt.Errorf("%s:%d: expanding this line makes more than %d lines", file, line, maxLines)
			}
			l := queue[0]
			queue = queue[1:]
			if l.set != "" {
				p.defs[l.set] = &definition{lines: []string{l.val}}
			}
			out, more, err := p.expand(l.text, file, line)
			if err != nil {
				return fmt.Errorf("%s:%d: %v", file, line, err)
			}
			queue = append(more, queue...)
			if out == "" {
				continue
			}
			if err := p.directives(out, file, line, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// decomment removes a comment ("#" or "!" outside double quotes, unless
// escaped with "\") and the blanks around the text; cont says the line
// ended in "\" (a multiline definition goes on), which is removed.
func decomment(s string) (text string, cont bool, err error) {
	var b strings.Builder
	quote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quote = !quote
		case c == '\\' && i+1 == len(s):
			cont = true
			continue
		case c == '\\' && !quote && (s[i+1] == '#' || s[i+1] == '!'):
			i++
			c = s[i]
		case c == '\\':
			b.WriteByte(c)
			i++
			c = s[i]
		case !quote && (c == '#' || c == '!'):
			return strings.Trim(b.String(), " \t"), false, nil
		}
		b.WriteByte(c)
	}
	if quote {
		return "", false, errors.New("a quoted argument is never closed")
	}
	return strings.Trim(b.String(), " \t"), cont, nil
}

// expand applies keepalived's line rules: an `@NAME` / `@^NAME` condition,
// a `$NAME=VALUE` definition, a ~SEQ, and parameter substitution. It
// returns the line to read ("" for none) and the lines a multiline
// definition or ~SEQ adds after it.
func (p *parser) expand(s, file string, line int) (string, []pending, error) {
	if strings.HasPrefix(s, "@") {
		rev := strings.HasPrefix(s, "@^")
		id := strings.TrimPrefix(strings.TrimPrefix(s, "@"), "^")
		name, rest, ok := strings.Cut(strings.Replace(id, "\t", " ", 1), " ")
		if !ok {
			return "", nil, nil // keepalived wants something after the id
		}
		if p.o.ConfigID == "" {
			p.warnOnce("config-id", file, line, "conditional lines (@NAME, @^NAME) are read for config id %q, this host's name (keepalived's default, on the director: its own name); --config-id NAME reads them for another director", p.configID)
		}
		if (name == p.configID) == rev {
			return "", nil, nil
		}
		s = strings.TrimLeft(rest, " \t")
	}
	if name, value, ok := definitionLine(s); ok {
		d := &definition{}
		if strings.HasSuffix(value, `\`) {
			d.multiline = true
			if v := strings.TrimRight(strings.TrimSuffix(value, `\`), " \t"); v != "" {
				d.lines = append(d.lines, v)
			}
			p.mdef = d
		} else {
			d.lines = []string{value}
		}
		p.defs[name] = d
		return "", nil, nil
	}
	switch {
	case strings.HasPrefix(s, "~SEQ"):
		lines, err := p.seq(s)
		return "", lines, err
	case strings.HasPrefix(s, "~LST"):
		p.warnOnce("lst:"+file+strconv.Itoa(line), file, line, "~LST: the importer does not expand list blocks; this line is left out (write its lines out)")
		return "", nil, nil
	case strings.HasPrefix(s, "~"):
		return s, nil, nil
	}
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	out, more, changed, err := p.substitute(s, file, line)
	if err != nil || !changed {
		return s, nil, err
	}
	out, _, err = decomment(out)
	var queue []pending
	for _, m := range more {
		queue = append(queue, pending{text: m})
	}
	return out, queue, err
}

// definitionLine reads `$NAME=VALUE`: no blank before "=", blanks after it
// skipped.
func definitionLine(s string) (name, value string, ok bool) {
	if len(s) < 3 || s[0] != '$' || !isNameStart(s[1]) {
		return "", "", false
	}
	i := 2
	for i < len(s) && isNameChar(s[i]) {
		i++
	}
	if i >= len(s) || s[i] != '=' {
		return "", "", false
	}
	return s[1:i], strings.TrimLeft(s[i+1:], " \t"), true
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }

// substitute replaces `$NAME` (followed by a blank, ",", ")" or the end)
// and `${NAME}` / `${NAME PARAMS}` for every defined NAME, rescanning what
// it put in (keepalived's replacement is recursive). An undefined name
// stays as it is. A multiline definition may only end a line: its first
// line takes the reference's place and the others follow.
func (p *parser) substitute(s, file string, line int) (string, []string, bool, error) {
	var more []string
	changed := false
	count := 0
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			i++
			continue
		}
		braces := s[i+1] == '{'
		j := i + 1
		if braces {
			j++
		}
		if j >= len(s) || !isNameStart(s[j]) {
			i++
			continue
		}
		k := j
		for k < len(s) && isNameChar(s[k]) {
			k++
		}
		name, params, end := s[j:k], "", k
		if braces {
			e := strings.IndexByte(s[k:], '}')
			if e < 0 {
				i++
				continue
			}
			// Parameters: blank-separated words of letters, digits and
			// "_", after a blank and before the "}" with no blank.
			params = s[k : k+e]
			if params != "" && (!strings.ContainsRune(" \t", rune(params[0])) || strings.TrimRight(params, " \t") != params ||
				strings.Trim(params, " \t0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") != "") {
				i++
				continue
			}
			params = strings.TrimSpace(params)
			end = k + e + 1
		} else if k < len(s) && !strings.ContainsRune(" \t,)", rune(s[k])) {
			i++
			continue
		}
		atEnd := end == len(s)
		value, lines, ok := p.lookup(name, params, atEnd, file, line)
		if !ok {
			i++
			continue
		}
		if count++; count > maxExpansions || len(s) > maxLine {
			return "", nil, false, fmt.Errorf("parameter substitution does not end (does $%s refer to itself?)", name)
		}
		changed = true
		s = s[:i] + value + s[end:]
		more = append(lines, more...)
		// Rescan from i: the value may hold parameters itself.
	}
	return s, more, changed, nil
}

// lookup finds a parameter's value: the file's and --define's definitions
// first (they replace keepalived's own), then keepalived's pre-defined ones.
func (p *parser) lookup(name, params string, atEnd bool, file string, line int) (string, []string, bool) {
	if d, ok := p.defs[name]; ok && params == "" {
		if d.multiline {
			if !atEnd {
				return "", nil, false
			}
			if len(d.lines) == 0 {
				return "", nil, true
			}
			return d.lines[0], slices.Clone(d.lines[1:]), true
		}
		return strings.Join(d.lines, ""), nil, true
	}
	switch name {
	case "_HASH":
		return "#", nil, params == ""
	case "_BANG":
		return "!", nil, params == ""
	case "_INSTANCE":
		if p.o.ConfigID == "" {
			p.warnOnce("config-id-instance", file, line, "${_INSTANCE} is read as %q, this host's name (keepalived's default, on the director: its own name); --config-id NAME sets it", p.configID)
		}
		return p.configID, nil, params == ""
	case "_PWD":
		dir, err := filepath.Abs(filepath.Dir(file))
		if err != nil || params != "" {
			return "", nil, false
		}
		p.warnOnce("pwd", file, line, "${_PWD} is read as %q, the directory of the file here; keepalived uses the directory it reads the file from on the director", dir)
		return dir, nil, true
	case "_ENV":
		if params == "" || strings.ContainsAny(params, " \t") {
			return "", nil, false
		}
		if v, ok := p.o.Defines[params]; ok {
			return v, nil, true
		}
		v, ok := p.lookupEnv(params)
		if ok {
			p.warnOnce("env:"+params, file, line, "${_ENV %s} is read from this host's environment as %q; keepalived reads its own environment on the director; --define %s=VALUE sets it", params, v, params)
		} else {
			p.warnOnce("env:"+params, file, line, "${_ENV %s}: %s is not set here, so it is empty, as in keepalived without it; --define %s=VALUE sets it", params, params, params)
		}
		return v, nil, true
	case "_RANDOM":
		lo, hi := 0, 32767
		f := strings.Fields(params)
		if len(f) > 2 {
			return "", nil, false
		}
		for i, x := range f {
			v, err := strconv.Atoi(x)
			if err != nil {
				return "", nil, false
			}
			if i == 0 {
				lo = v
			} else {
				hi = v
			}
		}
		p.warnOnce("random:"+file+strconv.Itoa(line), file, line, "${_RANDOM}: keepalived picks a random number in %d..%d at every start; the importer writes %d", lo, max(lo, hi), lo)
		return strconv.Itoa(lo), nil, true
	}
	return "", nil, false
}

// seq expands `~SEQ(VAR, [START,] [STEP,] END) TEXT` (~SEQx: VAR in hex):
// TEXT once for every value, with $VAR defined.
func (p *parser) seq(s string) ([]pending, error) {
	hex := strings.HasPrefix(s, "~SEQx")
	rest := strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(s, "~SEQ"), "x"), " \t")
	if !strings.HasPrefix(rest, "(") {
		return nil, fmt.Errorf("invalid ~SEQ %q: want ~SEQ(VAR, START, STEP, END)", s)
	}
	args, text, ok := strings.Cut(rest[1:], ")")
	if !ok {
		return nil, fmt.Errorf("~SEQ %q has no closing \")\"", s)
	}
	f := strings.Split(args, ",")
	name := strings.TrimSpace(f[0])
	if name == "" || len(f) < 2 || len(f) > 4 || !isNameStart(name[0]) {
		return nil, fmt.Errorf("invalid ~SEQ %q: want ~SEQ(VAR, START, STEP, END)", s)
	}
	var n []int64
	for _, x := range f[1:] {
		v, err := strconv.ParseInt(strings.TrimSpace(x), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid ~SEQ %q: %q is not a number", s, strings.TrimSpace(x))
		}
		n = append(n, v)
	}
	var start, step, end int64
	switch len(n) {
	case 1:
		end = n[0]
		start = 1
		if end < 0 {
			start = -1
		}
	case 2:
		start, end = n[0], n[1]
	case 3:
		start, step, end = n[0], n[1], n[2]
	}
	if step == 0 {
		step = 1
		if end < start {
			step = -1
		}
	}
	text = strings.TrimLeft(text, " \t")
	var lines []pending
	for v := start; (step > 0 && v <= end) || (step < 0 && v >= end); v += step {
		if len(lines) >= maxExpansions {
			return nil, fmt.Errorf("~SEQ %q makes more than %d lines", s, maxExpansions)
		}
		val := strconv.FormatInt(v, 10)
		if hex {
			val = strconv.FormatInt(v, 16)
		}
		lines = append(lines, pending{text: text, set: name, val: val})
	}
	return lines, nil
}

// directives reads one line's tokens into the tree: a directive ends at
// the end of its line, a line ending in "{" opens a block (or a line
// holding only "{" opens one for the directive before it), "}" closes one.
func (p *parser) directives(text, file string, line, depth int) error {
	toks, err := tokens(text)
	if err != nil {
		return fmt.Errorf("%s:%d: %v", file, line, err)
	}
	if len(toks) > 0 && isInclude(toks[0]) {
		// The rest of the line is the pattern, blanks and all.
		pattern := strings.TrimSpace(strings.TrimPrefix(text, toks[0]))
		if pattern == "" {
			return fmt.Errorf("%s:%d: %s needs a file name or pattern", file, line, toks[0])
		}
		p.last = nil
		return p.include(toks[0], strings.Trim(pattern, `"`), file, line, depth)
	}
	for len(toks) > 0 {
		top := p.stack[len(p.stack)-1]
		switch tok := toks[0]; tok {
		case "}":
			if len(p.stack) == 1 {
				return fmt.Errorf("%s:%d: \"}\" closes no block", file, line)
			}
			p.stack = p.stack[:len(p.stack)-1]
			toks, p.last = toks[1:], nil
			continue
		case "{":
			if p.last == nil || p.last.Block {
				return fmt.Errorf("%s:%d: \"{\" opens a block for no directive", file, line)
			}
			p.last.Block = true
			p.stack = append(p.stack, p.last)
			toks = toks[1:]
			continue
		}
		// A directive: up to "{" or "}" or the end of the line.
		end := len(toks)
		for j, t := range toks {
			if t == "{" || t == "}" {
				end = j
				break
			}
		}
		n := &Node{Name: toks[0], Args: toks[1:end], File: file, Line: line}
		toks = toks[end:]
		top.Children = append(top.Children, n)
		p.last = n
	}
	return nil
}

// isInclude is keepalived's include and its variants (includer, includem,
// includew, includeb, includea), which differ only in what keepalived
// reports about missing files.
func isInclude(tok string) bool {
	return tok == "include" || (len(tok) == 8 && strings.HasPrefix(tok, "include") && strings.ContainsRune("rmwba", rune(tok[7])))
}

// include reads the files a pattern names: relative to the including
// file's directory, with csh brace alternatives ({a,b}, nested) and glob
// wildcards, as keepalived's glob(GLOB_BRACE) does; directories and
// executable files are skipped, as keepalived skips them.
func (p *parser) include(kw, pattern, file string, line, depth int) error {
	if !p.includes {
		return fmt.Errorf("%s:%d: include %s: not allowed here", file, line, pattern)
	}
	if strings.Count(pattern, "{") > maxBraces {
		return fmt.Errorf("%s:%d: %s %s: more than %d brace expressions", file, line, kw, pattern, maxBraces)
	}
	var matches []string
	for _, pat := range expandBraces(pattern) {
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(filepath.Dir(file), pat)
		}
		m, err := filepath.Glob(pat)
		if err != nil {
			return fmt.Errorf("%s:%d: %s %s: %v", file, line, kw, pattern, err)
		}
		matches = append(matches, m...)
	}
	if len(matches) == 0 {
		p.warnOnce("include:"+file+":"+strconv.Itoa(line), file, line, "%s %s: no file matches here; keepalived goes on without it too, but on the director it may match", kw, pattern)
	}
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			return fmt.Errorf("%s:%d: %s %s: %v", file, line, kw, pattern, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 != 0 {
			p.warnOnce("include-skip:"+m, file, line, "%s %s: %s is skipped: keepalived reads regular, non-executable files only", kw, pattern, m)
			continue
		}
		if err := p.readFile(m, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// expandBraces expands csh brace alternatives: "a{b,c{d,e}}f" is abf,
// acdf, acef. A "\" keeps the next character; an unmatched brace is a
// plain character.
func expandBraces(s string) []string {
	depth, open := 0, -1
	var commas []int
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				open = i
				commas = nil
			}
			depth++
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		case '}':
			if depth == 0 {
				continue
			}
			depth--
			if depth > 0 {
				continue
			}
			var out []string
			start := open + 1
			for _, c := range append(commas, i) {
				out = append(out, expandBraces(s[:open]+s[start:c]+s[i+1:])...)
				start = c + 1
			}
			return out
		}
	}
	return []string{s}
}

// tokens splits one decommented line: blanks separate words, double quotes
// keep blanks inside one, and braces are words of their own.
func tokens(line string) ([]string, error) {
	var out []string
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '{' || c == '}':
			out = append(out, string(c))
			i++
		case c == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				return nil, errors.New("a quoted argument is never closed")
			}
			out = append(out, line[i+1:i+1+j])
			i += j + 2
		default:
			j := i
			for j < len(line) && !strings.ContainsRune(" \t\r{}\"", rune(line[j])) {
				j++
			}
			out = append(out, line[i:j])
			i = j
		}
	}
	return out, nil
}
