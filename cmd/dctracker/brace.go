package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Brace expansion as the upstream tracker's loader does it (the Python braceexpand package,
// bash-style): "a{b,c}" lists, "{1..10}" and "{a..e}" ranges with an optional step
// ("{0..100..10}"), zero padding when a bound is written with a leading zero ("{007..10}"),
// nesting, backslash escapes ("\{" is a literal brace). "{x}" with neither comma nor range is
// left literal; unbalanced braces are an error.

// maxExpansion bounds the number of strings one pattern may expand to.
const maxExpansion = 10_000_000

var (
	errUnbalanced = errors.New("unbalanced braces")
	errTooMany    = fmt.Errorf("expands to more than %d strings", maxExpansion)

	intRangeRe  = regexp.MustCompile(`^(-?\d+)\.\.(-?\d+)(?:\.\.-?(\d+))?$`)
	charRangeRe = regexp.MustCompile(`^([A-Za-z])\.\.([A-Za-z])(?:\.\.-?(\d+))?$`)
)

const braceAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// braceExpand expands pattern.
func braceExpand(pattern string) ([]string, error) {
	out, err := expandPattern(pattern)
	if err != nil {
		if errors.Is(err, errUnbalanced) {
			return nil, fmt.Errorf("%w: %q", errUnbalanced, pattern)
		}
		return nil, err
	}
	for i, s := range out {
		out[i] = unescape(s)
	}
	return out, nil
}

// unescape drops each escaping backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\\' && i+1 < len(rs) {
			i++
		}
		b.WriteRune(rs[i])
	}
	return b.String()
}

// expandPattern is a product of literal parts and brace expressions.
func expandPattern(p string) ([]string, error) {
	rs := []rune(p)
	var parts [][]string
	start, depth := 0, 0
	for pos := 0; pos < len(rs); pos++ {
		switch rs[pos] {
		case '\\':
			pos++ // the escaped rune is skipped
		case '{':
			if depth == 0 && pos > start {
				parts = append(parts, []string{string(rs[start:pos])})
				start = pos
			}
			depth++
		case '}':
			depth--
			if depth == 0 {
				expr := string(rs[start+1 : pos])
				alts, ok, err := expandExpression(expr)
				if err != nil {
					return nil, err
				}
				if ok {
					parts = append(parts, alts)
				} else { // not a list or a range: literal braces around the expanded inside
					inner, err := expandPattern(expr)
					if err != nil {
						return nil, err
					}
					parts = append(parts, []string{"{"}, inner, []string{"}"})
				}
				start = pos + 1
			}
		}
	}
	if depth != 0 {
		return nil, errUnbalanced
	}
	if start < len(rs) {
		parts = append(parts, []string{string(rs[start:])})
	}
	return product(parts)
}

func product(parts [][]string) ([]string, error) {
	out := []string{""}
	for _, alts := range parts {
		if len(out)*len(alts) > maxExpansion {
			return nil, errTooMany
		}
		next := make([]string, 0, len(out)*len(alts))
		for _, prefix := range out {
			for _, a := range alts {
				next = append(next, prefix+a)
			}
		}
		out = next
	}
	return out, nil
}

// expandExpression expands the inside of a brace pair; ok is false when it is neither a
// range nor a comma list.
func expandExpression(expr string) (alts []string, ok bool, err error) {
	if m := intRangeRe.FindStringSubmatch(expr); m != nil {
		alts, err = intRange(m[1], m[2], m[3])
		return alts, err == nil, err
	}
	if m := charRangeRe.FindStringSubmatch(expr); m != nil {
		return charRange(m[1], m[2], m[3]), true, nil
	}
	return expandList(expr)
}

func expandList(seq string) ([]string, bool, error) {
	rs := []rune(seq)
	var items []string
	start, depth := 0, 0
	for pos := 0; pos < len(rs); pos++ {
		switch rs[pos] {
		case '\\':
			pos++
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				items = append(items, string(rs[start:pos]))
				start = pos + 1
			}
		}
	}
	if depth != 0 {
		return nil, false, errUnbalanced
	}
	if items == nil {
		return nil, false, nil
	}
	items = append(items, string(rs[start:]))
	var out []string
	for _, it := range items {
		exp, err := expandPattern(it)
		if err != nil {
			return nil, false, err
		}
		if len(out)+len(exp) > maxExpansion {
			return nil, false, errTooMany
		}
		out = append(out, exp...)
	}
	return out, true, nil
}

func rangeStep(incr string) int {
	step, err := strconv.Atoi(incr)
	if err != nil || step == 0 {
		return 1
	}
	return step
}

func intRange(left, right, incr string) ([]string, error) {
	lo, err1 := strconv.Atoi(left)
	hi, err2 := strconv.Atoi(right)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("range {%s..%s}: bound out of range", left, right)
	}
	width := 0
	for _, s := range []string{left, right} {
		if s != "0" && s != "-0" && (strings.HasPrefix(s, "0") || strings.HasPrefix(s, "-0")) {
			width = max(len(left), len(right))
		}
	}
	step := rangeStep(incr)
	n := (abs(hi-lo))/step + 1
	if n > maxExpansion {
		return nil, errTooMany
	}
	out := make([]string, 0, n)
	if lo < hi {
		for i := lo; i <= hi; i += step {
			out = append(out, fmt.Sprintf("%0*d", width, i))
		}
	} else {
		for i := lo; i >= hi; i -= step {
			out = append(out, fmt.Sprintf("%0*d", width, i))
		}
	}
	return out, nil
}

func charRange(left, right, incr string) []string {
	step := rangeStep(incr)
	lo := strings.Index(braceAlphabet, left)
	hi := strings.Index(braceAlphabet, right)
	var out []string
	if lo < hi {
		for i := lo; i <= hi; i += step {
			out = append(out, braceAlphabet[i:i+1])
		}
	} else {
		for i := lo; i >= hi; i -= step {
			out = append(out, braceAlphabet[i:i+1])
		}
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
