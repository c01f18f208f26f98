package journal

import (
	"strings"
	"testing"
)

// quotedLen is what appendJSONString writes for a big string, exactly, so
// that a record holding a large input or output is allocated once.
func TestQuotedLen(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("a", bigString),
		strings.Repeat(`"\<>&`+"\n\t\x01\xff\u2028é\x7f", bigString/8),
	} {
		if got, want := quotedLen(s), len(appendJSONString(nil, s)); got != want {
			t.Errorf("quotedLen = %d, appendJSONString wrote %d", got, want)
		}
	}
	if got := quotedLen("short\n"); got != 6 {
		t.Errorf("quotedLen of a short string = %d, want its length 6", got)
	}
}
