// Package keepalived reads a keepalived.conf and turns it into a haldir
// configuration, saying for every directive it cannot carry over where it
// is and why: the way in for users who switch from keepalived.
package keepalived

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// maxInclude bounds nested includes (keepalived allows 8 levels as well).
const maxInclude = 8

// ParseFile reads path and the files it includes.
func ParseFile(path string) ([]*Node, error) {
	return parseFile(path, 0)
}

func parseFile(path string, depth int) ([]*Node, error) {
	if depth > maxInclude {
		return nil, fmt.Errorf("%s: includes nested deeper than %d", path, maxInclude)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(string(b), path, func(pattern string, line int) ([]*Node, error) {
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(path), pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: include %s: %v", path, line, pattern, err)
		}
		var out []*Node
		for _, m := range matches {
			ns, err := parseFile(m, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, ns...)
		}
		return out, nil
	})
}

// Parse reads a configuration held in memory; include is refused.
func Parse(src, name string) ([]*Node, error) {
	return parse(src, name, func(pattern string, line int) ([]*Node, error) {
		return nil, fmt.Errorf("%s:%d: include %s: not allowed here", name, line, pattern)
	})
}

// parse is line oriented, as keepalived is: a directive ends at the end of
// its line, a line ending in "{" opens a block (or a line holding only
// "{" opens one for the directive before it), "}" closes one. "#" and "!"
// start comments; double quotes keep blanks inside an argument.
func parse(src, file string, include func(pattern string, line int) ([]*Node, error)) ([]*Node, error) {
	root := &Node{Block: true}
	stack := []*Node{root}
	var last *Node // the last directive, which a lone "{" opens
	for i, raw := range strings.Split(src, "\n") {
		line := i + 1
		toks, err := tokens(raw)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", file, line, err)
		}
		for len(toks) > 0 {
			top := stack[len(stack)-1]
			switch tok := toks[0]; {
			case tok == "}":
				if len(stack) == 1 {
					return nil, fmt.Errorf("%s:%d: \"}\" closes no block", file, line)
				}
				stack = stack[:len(stack)-1]
				toks, last = toks[1:], nil
				continue
			case tok == "{":
				if last == nil || last.Block {
					return nil, fmt.Errorf("%s:%d: \"{\" opens a block for no directive", file, line)
				}
				last.Block = true
				stack = append(stack, last)
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
			if n.Name == "include" {
				if len(n.Args) != 1 {
					return nil, fmt.Errorf("%s:%d: include needs one file name or pattern", file, line)
				}
				ns, err := include(n.Args[0], line)
				if err != nil {
					return nil, err
				}
				top.Children = append(top.Children, ns...)
				last = nil
				continue
			}
			top.Children = append(top.Children, n)
			last = n
		}
	}
	if len(stack) > 1 {
		open := stack[len(stack)-1]
		return nil, fmt.Errorf("%s:%d: block %q is never closed", file, open.Line, open.Name)
	}
	return root.Children, nil
}

// tokens splits one line.
func tokens(line string) ([]string, error) {
	var out []string
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#' || c == '!':
			return out, nil
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
