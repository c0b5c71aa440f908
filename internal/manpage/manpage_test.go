package manpage

import "testing"

func TestInline(t *testing.T) {
	for _, tc := range []struct{ md, want string }{
		{"plain text", "plain text"},
		{".starts with a dot", `\&.starts with a dot`},
		{"a `-c FILE` option", `a \fB\-c FILE\fR option`},
		{"**bold `code` in it**", `\fBbold \fBcode\fB in it\fR`},
		{"*Syntax.* rest", `\fISyntax.\fR rest`},
		{"see [the docs](https://example.org/x) and [above](#loading)", `see the docs <https://example.org/x> and above`},
		{`back\slash`, `back\eslash`},
		{"≥ 0", `\[u2265] 0`},
		{"a * b", "a * b"},
		{"unclosed `code", "unclosed `code"},
	} {
		t.Run(tc.md, func(t *testing.T) {
			if got := Inline(tc.md); got != tc.want {
				t.Errorf("Inline(%q) = %q, want %q", tc.md, got, tc.want)
			}
		})
	}
}

func TestFromMarkdown(t *testing.T) {
	for _, tc := range []struct{ name, md, want string }{
		{"title left out, sections",
			"# Title\n\nIntro.\n\n## `[global]`\n\n### Sub \"q\"\n",
			".PP\nIntro.\n.SH \"\\fB[global]\\fR\"\n.SS \"Sub \\(dqq\\(dq\"\n"},
		{"table of contents left out",
			"* [One](#one)\n* [Two](#two): more\n\nText.\n",
			".PP\nText.\n"},
		{"lists with continuation",
			"1. **One.** first\n   continued\n2. two\n\n* bullet\n",
			".IP 1. 4\n\\fBOne.\\fR first\ncontinued\n.IP 2. 4\ntwo\n.IP \\(bu 2\nbullet\n.PP\n"},
		{"code blocks",
			"Form:\n\n    FILE:LINE: -x\n\n```toml\n.dot = 1\n```\n",
			".PP\nForm:\n.PP\n.RS 4\n.nf\nFILE:LINE: \\-x\n.fi\n.RE\n.PP\n.RS 4\n.nf\n\\&.dot = 1\n.fi\n.RE\n"},
		{"key table",
			"| Key | Type | Default | Meaning |\n|---|---|---|---|\n| `a_b` | string | `x\\|y` | Does it. |\n| `c` | bool | | |\n",
			".TP\n\\fBa_b\\fR\nType: string; Default: \\fBx|y\\fR\n.br\nDoes it.\n.TP\n\\fBc\\fR\nType: bool\n.PP\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FromMarkdown(tc.md); got != tc.want {
				t.Errorf("FromMarkdown:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}
