package keepalived

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// table is one TOML table of the output, with its keys in the order the
// keepalived configuration gave them.
type table struct {
	header  string // "[global]", "[[vrrp]]", ...
	comment string // where it came from
	src     *Node  // the directive it came from, for warnings
	keys    []kv
}

type kv struct {
	key, val string
}

func (t *table) set(key, val string) {
	for i := range t.keys {
		if t.keys[i].key == key {
			t.keys[i].val = val
			return
		}
	}
	t.keys = append(t.keys, kv{key, val})
}

func (t *table) has(key string) bool {
	for _, k := range t.keys {
		if k.key == key {
			return true
		}
	}
	return false
}

func (t *table) str(key, v string)               { t.set(key, quote(v)) }
func (t *table) num(key string, v int)           { t.set(key, strconv.Itoa(v)) }
func (t *table) boolean(key string, v bool)      { t.set(key, strconv.FormatBool(v)) }
func (t *table) dur(key string, d time.Duration) { t.set(key, quote(d.String())) }

func (t *table) strs(key string, vs []string) {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = quote(v)
	}
	t.set(key, "["+strings.Join(q, ", ")+"]")
}

func (t *table) write(b *strings.Builder) {
	fmt.Fprintf(b, "\n")
	if t.comment != "" {
		fmt.Fprintf(b, "# %s\n", t.comment)
	}
	fmt.Fprintf(b, "%s\n", t.header)
	for _, k := range t.keys {
		fmt.Fprintf(b, "%s = %s\n", k.key, k.val)
	}
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
