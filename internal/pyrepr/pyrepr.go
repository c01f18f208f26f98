// Package pyrepr writes values as Python's str() does, where dcproxy must
// read a request as the tracker does: pydantic v1 turns a JSON number into
// a string field with str(), so 1e16 is "1e+16" and 1.0 is "1.0".
//
// trackertest has its own copy (pyFloatRepr): it is the oracle the proxy's
// reading is tested against (TestParseBodyLikeTracker), and it uses the
// standard library only (docs/DESIGN.md, internal/archtest), so the two
// are not one function that would agree with itself when wrong.
package pyrepr

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Float is Python's repr(float), which is also its str(float).
func Float(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	neg := strings.HasPrefix(e, "-")
	e = strings.TrimPrefix(e, "-")
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	var out string
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		out = fmt.Sprintf("%se%s%02d", m, sign, exp)
	} else if exp < 0 {
		out = "0." + strings.Repeat("0", -exp-1) + digits
	} else if len(digits) <= exp+1 {
		out = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	} else {
		out = digits[:exp+1] + "." + digits[exp+1:]
	}
	if neg {
		out = "-" + out
	}
	return out
}
