package keepalived

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// keys are TOML key/value pairs in the order the keepalived configuration
// gave them; a value is TOML text, or an inline table (sub) that later
// directives may still add to.
type keys []kv

type kv struct {
	key, val string
	sub      *keys
}

func (ks *keys) find(key string) int {
	for i := range *ks {
		if (*ks)[i].key == key {
			return i
		}
	}
	return -1
}

func (ks *keys) set(key, val string) {
	if i := ks.find(key); i >= 0 {
		(*ks)[i] = kv{key: key, val: val}
		return
	}
	*ks = append(*ks, kv{key: key, val: val})
}

func (ks *keys) has(key string) bool { return ks.find(key) >= 0 }

// get returns a plain value's TOML text.
func (ks *keys) get(key string) (string, bool) {
	if i := ks.find(key); i >= 0 && (*ks)[i].sub == nil {
		return (*ks)[i].val, true
	}
	return "", false
}

// table returns the inline table under key, adding it if absent.
func (ks *keys) table(key string) *keys {
	if i := ks.find(key); i >= 0 && (*ks)[i].sub != nil {
		return (*ks)[i].sub
	}
	sub := &keys{}
	if i := ks.find(key); i >= 0 {
		(*ks)[i] = kv{key: key, sub: sub}
	} else {
		*ks = append(*ks, kv{key: key, sub: sub})
	}
	return sub
}

// existing returns the inline table under key, or nil.
func (ks *keys) existing(key string) *keys {
	if i := ks.find(key); i >= 0 {
		return (*ks)[i].sub
	}
	return nil
}

func (ks *keys) str(key, v string)               { ks.set(key, quote(v)) }
func (ks *keys) num(key string, v int)           { ks.set(key, strconv.Itoa(v)) }
func (ks *keys) boolean(key string, v bool)      { ks.set(key, strconv.FormatBool(v)) }
func (ks *keys) dur(key string, d time.Duration) { ks.set(key, quote(d.String())) }
func (ks *keys) strs(key string, vs []string)    { ks.set(key, quoteAll(vs)) }

// inline renders the keys as a TOML inline table.
func (ks *keys) inline() string {
	parts := make([]string, 0, len(*ks))
	for _, k := range *ks {
		parts = append(parts, k.key+" = "+k.text())
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func (k kv) text() string {
	if k.sub != nil {
		return k.sub.inline()
	}
	return k.val
}

// table is one TOML table of the output.
type table struct {
	header  string // "[global]", "[[vrrp]]", ...
	comment string // where it came from
	src     *Node  // the directive it came from, for warnings
	keys
}

func (t *table) write(b *strings.Builder) {
	fmt.Fprintf(b, "\n")
	if t.comment != "" {
		fmt.Fprintf(b, "# %s\n", t.comment)
	}
	fmt.Fprintf(b, "%s\n", t.header)
	for _, k := range t.keys {
		fmt.Fprintf(b, "%s = %s\n", k.key, k.text())
	}
}

func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// quote is a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
