package conf

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in the file as a Go duration string
// ("100ms", "1.5s", "2m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText parses a Go duration string. Bare numbers are rejected so
// that "advert_interval = 1" cannot silently mean one nanosecond.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"100ms\", \"1s\")", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d in the form UnmarshalText reads.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// StatusCodes is expect_status: a list of codes (200) and ranges ("200-299").
type StatusCodes []StatusRange

// Contains reports whether code is in any range.
func (s StatusCodes) Contains(code int) bool {
	for _, r := range s {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// UnmarshalTOML accepts an array of integers and "lo-hi" strings.
func (s *StatusCodes) UnmarshalTOML(v any) error {
	arr, ok := v.([]any)
	if !ok {
		return fmt.Errorf("expected an array of status codes or \"lo-hi\" ranges, got %T", v)
	}
	out := make(StatusCodes, 0, len(arr))
	for i, e := range arr {
		switch x := e.(type) {
		case int64:
			out = append(out, StatusRange{int(x), int(x)})
		case string:
			lo, hi, found := strings.Cut(x, "-")
			a, err1 := strconv.Atoi(strings.TrimSpace(lo))
			b := a
			var err2 error
			if found {
				b, err2 = strconv.Atoi(strings.TrimSpace(hi))
			}
			if err1 != nil || err2 != nil {
				return fmt.Errorf("element %d: invalid status range %q (want e.g. \"200-299\")", i, x)
			}
			out = append(out, StatusRange{a, b})
		default:
			return fmt.Errorf("element %d: expected a status code or \"lo-hi\" range, got %T", i, e)
		}
	}
	*s = out
	return nil
}

// String writes s the way expect_status reads it: "200,300-399".
func (s StatusCodes) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		if r.Lo == r.Hi {
			parts[i] = strconv.Itoa(r.Lo)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return strings.Join(parts, ",")
}

// ParseCommunity reads a BGP standard community (RFC 1997) written as
// "ASN:VALUE", each 0..65535, into its 32-bit value.
func ParseCommunity(s string) (uint32, error) {
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q must be ASN:VALUE, e.g. \"65010:100\"", s)
	}
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q must be ASN:VALUE with both parts 0..65535", s)
	}
	return uint32(a)<<16 | uint32(b), nil
}

// FormatCommunity writes a standard community as ParseCommunity reads it.
func FormatCommunity(c uint32) string { return fmt.Sprintf("%d:%d", c>>16, c&0xffff) }
