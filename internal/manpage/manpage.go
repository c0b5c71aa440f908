// Package manpage writes man pages (roff with the man macros): text escaped
// for roff, and the Markdown subset docs/ is written in converted to roff, so
// a page can be generated from the document that is already maintained
// (haldir.toml(5) from docs/config.md) instead of kept beside it.
package manpage

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Header is a page's .TH line. The date is left out on purpose: a page
// generated from unchanged sources stays byte for byte the same (the tests
// compare it with the committed one).
func Header(title, section, source, manual string) string {
	return fmt.Sprintf(".TH %s %s \"\" %q %q\n", strings.ToUpper(title), section, source, manual)
}

// Escape makes plain text safe as roff input: backslashes escaped, every
// non-ASCII character as a groff \[uXXXX] escape (so the page does not
// depend on the input encoding man assumes), and a leading dot or quote
// (a request) neutralised. Hyphens stay hyphens; Code makes them minus
// signs where they are typed, as in options.
func Escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r >= utf8.RuneSelf:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	return guardLine(b.String())
}

// Code is text to be typed (an option, a key, a command): escaped, its
// hyphens written as minus signs so that it can be copied from the page.
func Code(s string) string {
	return strings.ReplaceAll(Escape(s), "-", `\-`)
}

// guardLine protects a line that would start with a control character.
func guardLine(s string) string {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		return `\&` + s
	}
	return s
}

// font tracks the font a span returns to when it closes.
type font struct{ bold, italic bool }

func (f font) code() string {
	switch {
	case f.bold:
		return `\fB`
	case f.italic:
		return `\fI`
	}
	return `\fR`
}

var linkRe = regexp.MustCompile(`^\[([^\]]*)\]\(([^)]*)\)`)

// Inline converts one paragraph's Markdown inline markup: `code` and
// **strong** in bold, *emphasis* in italic, a link as its text (and the
// address of an absolute one after it in angle brackets).
func Inline(md string) string {
	var b strings.Builder
	inline(&b, md, font{})
	return guardLine(b.String())
}

func inline(b *strings.Builder, md string, f font) {
	for i := 0; i < len(md); {
		rest := md[i:]
		switch {
		case rest[0] == '`':
			end := strings.IndexByte(rest[1:], '`')
			if end < 0 {
				b.WriteString(Escape(rest))
				return
			}
			b.WriteString(`\fB` + strings.TrimPrefix(Code(rest[1:1+end]), `\&`) + f.code())
			i += end + 2
		case strings.HasPrefix(rest, "**"):
			f.bold = !f.bold
			b.WriteString(f.code())
			i += 2
		case rest[0] == '*' && len(rest) > 1 && rest[1] != ' ' && (i == 0 || md[i-1] == ' ' || md[i-1] == '(') || rest[0] == '*' && f.italic:
			f.italic = !f.italic
			b.WriteString(f.code())
			i++
		case rest[0] == '[' && linkRe.MatchString(rest):
			m := linkRe.FindStringSubmatch(rest)
			inline(b, m[1], f)
			if strings.HasPrefix(m[2], "http://") || strings.HasPrefix(m[2], "https://") {
				b.WriteString(" <" + Escape(m[2]) + ">")
			}
			i += len(m[0])
		default:
			// Up to the next markup character.
			n := strings.IndexAny(rest[1:], "`*[")
			if n < 0 {
				n = len(rest) - 1
			}
			b.WriteString(strings.TrimPrefix(Escape(rest[:n+1]), `\&`))
			i += n + 1
		}
	}
}

var (
	itemRe  = regexp.MustCompile(`^(\s*)([*-]|\d+\.) +(.*)$`)
	tocItem = regexp.MustCompile(`^\[.*\]\(#`)
)

// FromMarkdown converts a Markdown document in the subset docs/ uses:
// "#" (left out: the page's NAME says it), "##" as .SH, "###" as .SS,
// paragraphs, bulleted and numbered lists (an item's indented lines are
// its continuation), indented and fenced code blocks, and tables (each
// row a tagged paragraph: the first cell the tag, the others below it,
// named by their column). A list of links to the document's own headings
// (a table of contents) is left out: a man page has no anchors.
func FromMarkdown(md string) string {
	var out strings.Builder
	lines := strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			i++
		case strings.HasPrefix(line, "```"):
			j := i + 1
			for j < len(lines) && !strings.HasPrefix(lines[j], "```") {
				j++
			}
			codeBlock(&out, lines[i+1:min(j, len(lines))])
			i = j + 1
		case strings.HasPrefix(line, "    "):
			j := i
			for j < len(lines) && (strings.HasPrefix(lines[j], "    ") || strings.TrimSpace(lines[j]) == "" && j+1 < len(lines) && strings.HasPrefix(lines[j+1], "    ")) {
				j++
			}
			block := make([]string, 0, j-i)
			for _, l := range lines[i:j] {
				block = append(block, strings.TrimPrefix(l, "    "))
			}
			codeBlock(&out, block)
			i = j
		case strings.HasPrefix(line, "# "):
			i++
		case strings.HasPrefix(line, "## "):
			fmt.Fprintf(&out, ".SH \"%s\"\n", headingText(line[3:]))
			i++
		case strings.HasPrefix(line, "### "):
			fmt.Fprintf(&out, ".SS \"%s\"\n", headingText(line[4:]))
			i++
		case strings.HasPrefix(line, "|"):
			j := i
			for j < len(lines) && strings.HasPrefix(lines[j], "|") {
				j++
			}
			table(&out, lines[i:j])
			i = j
		case itemRe.MatchString(line):
			i = list(&out, lines, i)
		default:
			j := i
			for j < len(lines) && strings.TrimSpace(lines[j]) != "" && !startsBlock(lines[j]) {
				j++
			}
			out.WriteString(".PP\n")
			writeText(&out, strings.Join(lines[i:j], "\n"))
			i = j
		}
	}
	return out.String()
}

// startsBlock says whether line begins a block other than a paragraph.
func startsBlock(line string) bool {
	return strings.HasPrefix(line, "#") || strings.HasPrefix(line, "|") || strings.HasPrefix(line, "```") || itemRe.MatchString(line)
}

// headingText is a heading for .SH/.SS: its inline markup rendered, and
// no double quote to end the argument early.
func headingText(md string) string {
	return strings.ReplaceAll(Inline(strings.TrimSpace(md)), `"`, `\(dq`)
}

// writeText writes a paragraph's lines, each converted and guarded.
func writeText(out *strings.Builder, md string) {
	for _, l := range strings.Split(md, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out.WriteString(Inline(l) + "\n")
		}
	}
}

func codeBlock(out *strings.Builder, lines []string) {
	out.WriteString(".PP\n.RS 4\n.nf\n")
	for _, l := range lines {
		out.WriteString(Code(l) + "\n")
	}
	out.WriteString(".fi\n.RE\n")
}

// list converts the list that starts at lines[i] and returns the index
// after it.
func list(out *strings.Builder, lines []string, i int) int {
	type item struct{ mark, text string }
	var items []item
	for i < len(lines) {
		m := itemRe.FindStringSubmatch(lines[i])
		if m == nil {
			break
		}
		it := item{mark: m[2], text: m[3]}
		i++
		// Continuation: indented, non-blank lines that start no item.
		for i < len(lines) && strings.HasPrefix(lines[i], " ") && strings.TrimSpace(lines[i]) != "" && !itemRe.MatchString(lines[i]) {
			it.text += "\n" + lines[i]
			i++
		}
		items = append(items, it)
		if i < len(lines) && strings.TrimSpace(lines[i]) == "" && i+1 < len(lines) && itemRe.MatchString(lines[i+1]) {
			i++ // a loose list: a blank line between items
		}
	}
	toc := true
	for _, it := range items {
		toc = toc && tocItem.MatchString(it.text)
	}
	if toc {
		return i
	}
	for _, it := range items {
		if it.mark == "*" || it.mark == "-" {
			out.WriteString(".IP \\(bu 2\n")
		} else {
			fmt.Fprintf(out, ".IP %s 4\n", it.mark)
		}
		writeText(out, it.text)
	}
	out.WriteString(".PP\n")
	return i
}

// cells splits a table row at its unescaped bars.
func cells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var cs []string
	var cur strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row) && row[i+1] == '|':
			cur.WriteByte('|')
			i++
		case row[i] == '|':
			cs = append(cs, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(row[i])
		}
	}
	return append(cs, strings.TrimSpace(cur.String()))
}

// table writes each row as a tagged paragraph: the first cell is the tag;
// the middle cells follow as "Column: value" on one line, and the last
// (the description, in docs/config.md) as a paragraph of its own.
func table(out *strings.Builder, rows []string) {
	if len(rows) < 2 {
		return
	}
	head := cells(rows[0])
	for _, row := range rows[2:] {
		c := cells(row)
		out.WriteString(".TP\n" + Inline(c[0]) + "\n")
		var mid []string
		for k := 1; k < len(c) && k < len(head); k++ {
			if c[k] == "" {
				continue
			}
			if k == len(head)-1 && len(head) > 2 {
				break
			}
			mid = append(mid, head[k]+": "+c[k])
		}
		if len(mid) > 0 {
			out.WriteString(Inline(strings.Join(mid, "; ")) + "\n")
		}
		if last := len(head) - 1; len(head) > 2 && last < len(c) && c[last] != "" {
			if len(mid) > 0 {
				out.WriteString(".br\n")
			}
			out.WriteString(Inline(c[last]) + "\n")
		}
	}
	out.WriteString(".PP\n")
}
