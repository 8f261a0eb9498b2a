package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a configuration file, at the position of
// the offending key or value so an operator can jump straight to it.
type Problem struct {
	File      string
	Line, Col int // 1-based; 0 when the problem is with the file as a whole
	Msg       string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
}

// Errors is every problem found in one file. Load reports them all at once
// so an operator fixes a file in one pass instead of one error per run.
type Errors []Problem

// Error gives one FILE:LINE:COL: message line per problem, in file order,
// the format `callsign check` prints and editors can jump to.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e.sorted() {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sorted orders by position; problems at the same position keep the order
// they were found in, which follows the file.
func (e Errors) sorted() Errors {
	s := append(Errors(nil), e...)
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].Line != s[j].Line {
			return s[i].Line < s[j].Line
		}
		return s[i].Col < s[j].Col
	})
	return s
}
