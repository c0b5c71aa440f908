package conf

import (
	"encoding"
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

var (
	typeOfConfig      = reflect.TypeFor[Config]()
	typeOfDuration    = reflect.TypeFor[Duration]()
	typeOfAddr        = reflect.TypeFor[netip.Addr]()
	typeOfPrefix      = reflect.TypeFor[netip.Prefix]()
	typeOfAddrPort    = reflect.TypeFor[netip.AddrPort]()
	typeOfUnmarshaler = reflect.TypeFor[toml.Unmarshaler]()
	typeOfTextUnm     = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// textTypes describes the string-encoded value types for messages.
var textTypes = map[reflect.Type]struct{ want, example string }{
	typeOfDuration: {"a duration string", `"1s"`},
	typeOfAddr:     {"an IP address string", `"192.0.2.1"`},
	typeOfPrefix:   {"an address/prefix-length string", `"192.0.2.10/24"`},
	typeOfAddrPort: {"an address:port string", `"192.0.2.1:80"`},
}

// typecheck walks the decoded document against the Go type t, recording
// every present key in d.set and an error for every unknown key and every
// value of the wrong type. Arrays are walked element by element so errors
// carry the exact index.
func (d *document) typecheck(v any, t reflect.Type, path string) {
	if path != "" {
		d.set[path] = true
	}
	if reflect.PointerTo(t).Implements(typeOfUnmarshaler) {
		u := reflect.New(t).Interface().(toml.Unmarshaler)
		if err := u.UnmarshalTOML(v); err != nil {
			d.add(path, "%v", err)
		}
		return
	}
	if reflect.PointerTo(t).Implements(typeOfTextUnm) {
		tt := textTypes[t]
		s, ok := v.(string)
		if !ok {
			d.add(path, "must be %s like %s, got %s", tt.want, tt.example, describe(v))
			return
		}
		u := reflect.New(t).Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText([]byte(s)); err != nil {
			if t == typeOfDuration {
				d.add(path, "%v", err)
			} else {
				d.add(path, "invalid value %q: must be %s like %s", s, tt.want, tt.example)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		d.typecheck(v, t.Elem(), path)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.add(path, "must be a table, got %s", describe(v))
			return
		}
		fields := tomlFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := joinPath(path, k)
			f, ok := fields[k]
			if !ok {
				d.set[p] = true
				if s := suggest(k, fields); s != "" {
					d.add(p, "unknown key (did you mean %q?)", s)
				} else {
					d.add(p, "unknown key")
				}
				continue
			}
			d.typecheck(m[k], f.Type, p)
		}
	case reflect.Slice:
		var elems []any
		switch a := v.(type) {
		case []any:
			elems = a
		case []map[string]any:
			for _, e := range a {
				elems = append(elems, e)
			}
		case map[string]any:
			if t.Elem().Kind() == reflect.Struct {
				d.add(path, "must be an array of tables: write [[%s]] instead of [%s]", path, path)
			} else {
				d.add(path, "must be an array, got a table")
			}
			return
		default:
			d.add(path, "must be an array, got %s", describe(v))
			return
		}
		for i, e := range elems {
			d.typecheck(e, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			d.add(path, "must be a string, got %s", describe(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			d.add(path, "must be true or false, got %s", describe(v))
		}
	case reflect.Int:
		if _, ok := v.(int64); !ok {
			d.add(path, "must be an integer, got %s", describe(v))
		}
	default:
		// Every type in the schema is handled above; a new one must be
		// added here before it can be used.
		d.add(path, "internal error: no type check for %s", t)
	}
}

// tomlFields maps toml key names to struct fields.
func tomlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// describe names a decoded TOML value's type and shows short scalars.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date/time"
	}
	return fmt.Sprintf("%T", v)
}

// suggest returns the known key closest to k when it is a likely typo.
func suggest(k string, fields map[string]reflect.StructField) string {
	best, bestDist := "", 3
	for name := range fields {
		if dist := editDistance(k, name); dist < bestDist || dist == bestDist && name < best {
			best, bestDist = name, dist
		}
	}
	if bestDist > 2 || bestDist >= len(k) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
