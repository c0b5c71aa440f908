package conf

import (
	"strconv"
	"strings"
)

// BurntSushi/toml v1.6 keeps key positions private, and even internally it
// records them per unindexed key ("virtual_server.port" holds the line of
// the last virtual server's port only). Errors must point at the line of the
// exact array element, so keyLines re-scans the document, which the TOML
// parser has already accepted, and records the first line of every key,
// table header and array element under its indexed path
// ("virtual_server[1].real_server[0].weight").
//
// The scanner only has to be right on valid TOML; on anything else it must
// merely terminate without panicking, which the fuzz target checks.

// keyLines maps indexed key paths to 1-based line numbers.
func keyLines(data []byte) map[string]int {
	s := &lineScanner{src: string(data), line: 1, lines: map[string]int{}, aot: map[string]int{}}
	s.document()
	return s.lines
}

type lineScanner struct {
	src   string
	i     int
	line  int
	lines map[string]int
	aot   map[string]int // indexed path of an array of tables -> elements seen
	table string         // indexed path of the current [table]
}

func (s *lineScanner) eof() bool { return s.i >= len(s.src) }

func (s *lineScanner) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

func (s *lineScanner) next() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

func (s *lineScanner) record(path string, line int) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

// skipSpace skips blanks, and with nl also newlines and comments.
func (s *lineScanner) skipSpace(nl bool) {
	for !s.eof() {
		switch c := s.peek(0); {
		case c == ' ' || c == '\t':
			s.next()
		case nl && (c == '\n' || c == '\r'):
			s.next()
		case nl && c == '#':
			s.skipComment()
		default:
			return
		}
	}
}

func (s *lineScanner) skipComment() {
	for !s.eof() && s.peek(0) != '\n' {
		s.next()
	}
}

func (s *lineScanner) document() {
	for !s.eof() {
		start := s.i
		s.skipSpace(true)
		if s.eof() {
			return
		}
		line := s.line
		if s.peek(0) == '[' {
			s.header(line)
		} else {
			keys := s.key()
			s.skipSpace(false)
			if s.peek(0) == '=' {
				s.next()
				s.skipSpace(false)
				path := joinPath(s.table, keys...)
				s.recordDotted(s.table, keys, line)
				s.value(path)
			}
		}
		// Whatever follows on the line (a comment, or junk in invalid
		// input) is skipped; guarantee progress.
		s.skipSpace(false)
		if s.peek(0) == '#' {
			s.skipComment()
		}
		if s.i == start {
			s.next()
		}
	}
}

func (s *lineScanner) recordDotted(base string, keys []string, line int) {
	for n := 1; n <= len(keys); n++ {
		s.record(joinPath(base, keys[:n]...), line)
	}
}

func (s *lineScanner) header(line int) {
	s.next() // '['
	array := s.peek(0) == '['
	if array {
		s.next()
	}
	s.skipSpace(false)
	keys := s.key()
	for !s.eof() && s.peek(0) != ']' && s.peek(0) != '\n' {
		s.next()
	}
	s.next()
	if array && s.peek(0) == ']' {
		s.next()
	}
	if len(keys) == 0 {
		return
	}
	if !array {
		s.table = s.resolve(keys, line)
		return
	}
	parent := s.resolve(keys[:len(keys)-1], line)
	p := joinPath(parent, keys[len(keys)-1])
	n := s.aot[p]
	s.aot[p] = n + 1
	s.record(p, line)
	s.table = p + "[" + strconv.Itoa(n) + "]"
	s.record(s.table, line)
}

// resolve turns header keys into an indexed path, descending into the
// latest element of every array of tables on the way. Tables the header
// creates implicitly are recorded at its line.
func (s *lineScanner) resolve(keys []string, line int) string {
	cur := ""
	for _, k := range keys {
		cur = joinPath(cur, k)
		if n, ok := s.aot[cur]; ok && n > 0 {
			cur += "[" + strconv.Itoa(n-1) + "]"
		}
		s.record(cur, line)
	}
	return cur
}

// key reads a dotted key.
func (s *lineScanner) key() []string {
	var keys []string
	for !s.eof() {
		s.skipSpace(false)
		var k string
		switch s.peek(0) {
		case '"':
			start := s.i
			s.basicString()
			raw := s.src[start:s.i]
			if u, err := strconv.Unquote(raw); err == nil {
				k = u
			} else {
				k = strings.Trim(raw, `"`)
			}
		case '\'':
			start := s.i
			s.literalString()
			k = strings.Trim(s.src[start:s.i], "'")
		default:
			start := s.i
			for !s.eof() && isBareKeyChar(s.peek(0)) {
				s.next()
			}
			if s.i == start {
				return keys
			}
			k = s.src[start:s.i]
		}
		keys = append(keys, k)
		s.skipSpace(false)
		if s.peek(0) != '.' {
			return keys
		}
		s.next()
	}
	return keys
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c >= 0x80
}

func (s *lineScanner) value(path string) {
	switch {
	case strings.HasPrefix(s.src[s.i:], `"""`):
		s.multiline('"', true)
	case strings.HasPrefix(s.src[s.i:], `'''`):
		s.multiline('\'', false)
	case s.peek(0) == '"':
		s.basicString()
	case s.peek(0) == '\'':
		s.literalString()
	case s.peek(0) == '[':
		s.array(path)
	case s.peek(0) == '{':
		s.inlineTable(path)
	default:
		for !s.eof() && !strings.ContainsRune(",]}#\r\n", rune(s.peek(0))) {
			s.next()
		}
	}
}

func (s *lineScanner) basicString() {
	s.next()
	for !s.eof() {
		switch s.peek(0) {
		case '\\':
			s.next()
			s.next()
		case '"':
			s.next()
			return
		case '\n':
			return
		default:
			s.next()
		}
	}
}

func (s *lineScanner) literalString() {
	s.next()
	for !s.eof() {
		switch s.peek(0) {
		case '\'':
			s.next()
			return
		case '\n':
			return
		default:
			s.next()
		}
	}
}

func (s *lineScanner) multiline(q byte, escapes bool) {
	s.i += 3
	delim := strings.Repeat(string(q), 3)
	for !s.eof() {
		if escapes && s.peek(0) == '\\' {
			s.next()
			s.next()
			continue
		}
		if strings.HasPrefix(s.src[s.i:], delim) {
			s.i += 3
			// Up to two quotes may directly precede the closing delimiter.
			for n := 0; n < 2 && s.peek(0) == q; n++ {
				s.next()
			}
			return
		}
		s.next()
	}
}

func (s *lineScanner) array(path string) {
	s.next() // '['
	for idx := 0; !s.eof(); idx++ {
		s.skipSpace(true)
		if s.peek(0) == ']' {
			s.next()
			return
		}
		start := s.i
		elem := path + "[" + strconv.Itoa(idx) + "]"
		s.record(elem, s.line)
		s.value(elem)
		s.skipSpace(true)
		if s.peek(0) == ',' {
			s.next()
		} else if s.i == start {
			s.next()
		}
	}
}

func (s *lineScanner) inlineTable(path string) {
	s.next() // '{'
	for !s.eof() {
		s.skipSpace(true)
		if s.peek(0) == '}' {
			s.next()
			return
		}
		start := s.i
		line := s.line
		keys := s.key()
		s.skipSpace(false)
		if s.peek(0) == '=' {
			s.next()
			s.skipSpace(false)
			s.recordDotted(path, keys, line)
			s.value(joinPath(path, keys...))
		}
		s.skipSpace(true)
		if s.peek(0) == ',' {
			s.next()
		} else if s.i == start {
			s.next()
		}
	}
}

// joinPath appends keys to an indexed path, quoting keys that are not bare.
func joinPath(base string, keys ...string) string {
	var b strings.Builder
	b.WriteString(base)
	for _, k := range keys {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKey(k))
	}
	return b.String()
}

func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(k)
		}
	}
	return k
}

// parentPath strips the last key or index from an indexed path, ignoring
// separators inside quoted keys. It returns "" at the top.
func parentPath(p string) string {
	cut := 0
	inQuote := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == '.' || c == '['):
			cut = i
		}
	}
	return p[:cut]
}
