package trackertest

import (
	"testing"
)

// Expected values below were produced by CPython 3.11's json module (json.loads, then
// json.dumps of the result, or str(JSONDecodeError)) and repr(float).

func TestPyLoadsMatchesPython(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"{\"a\" 1}", "ERR Expecting ':' delimiter: line 1 column 6 (char 5)"},
		{"{\"a\":1 \"b\"}", "ERR Expecting ',' delimiter: line 1 column 8 (char 7)"},
		{"[1,]", "ERR Expecting value: line 1 column 4 (char 3)"},
		{"{\"a\":1,}", "ERR Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"},
		{"{", "ERR Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"},
		{"[", "ERR Expecting value: line 1 column 2 (char 1)"},
		{"\"abc", "ERR Unterminated string starting at: line 1 column 1 (char 0)"},
		{"tru", "ERR Expecting value: line 1 column 1 (char 0)"},
		{"-", "ERR Expecting value: line 1 column 1 (char 0)"},
		{"01", "ERR Extra data: line 1 column 2 (char 1)"},
		{"1.", "ERR Extra data: line 1 column 2 (char 1)"},
		{"1e", "ERR Extra data: line 1 column 2 (char 1)"},
		{"[1 2]", "ERR Expecting ',' delimiter: line 1 column 4 (char 3)"},
		{"{\"a\":\"x\\q\"}", "ERR Invalid \\escape: line 1 column 8 (char 7)"},
		{"{\"a\":\"\\u12\"}", "ERR Invalid \\uXXXX escape: line 1 column 8 (char 7)"},
		{"\"a\nb\"", "ERR Invalid control character at: line 1 column 3 (char 2)"},
		{"  ", "ERR Expecting value: line 1 column 3 (char 2)"},
		{"{\"k\":}", "ERR Expecting value: line 1 column 6 (char 5)"},
		{"[\"a\",", "ERR Expecting value: line 1 column 6 (char 5)"},
		{"{1:2}", "ERR Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"},
		{"nul", "ERR Expecting value: line 1 column 1 (char 0)"},
		{"{\"a\":[1,2,{\"b\":}]}", "ERR Expecting value: line 1 column 16 (char 15)"},
		{"\u00e9\"", "ERR Expecting value: line 1 column 1 (char 0)"},
		{"[\"\u00e9\", x]", "ERR Expecting value: line 1 column 7 (char 6)"},
		{"1 2", "ERR Extra data: line 1 column 3 (char 2)"},
		{"{} x", "ERR Extra data: line 1 column 4 (char 3)"},
		{"\"\\ud800\\u12\"", "ERR Invalid \\uXXXX escape: line 1 column 9 (char 8)"},
		{"\"abc\\", "ERR Unterminated string starting at: line 1 column 1 (char 0)"},
		{"\"abc\\u", "ERR Invalid \\uXXXX escape: line 1 column 6 (char 5)"},
		{"{\"a\"", "ERR Expecting ':' delimiter: line 1 column 5 (char 4)"},
		{"-Infinity x", "ERR Extra data: line 1 column 11 (char 10)"},
		{"\n\n  [1,\n ]", "ERR Expecting value: line 4 column 2 (char 9)"},
		{"[1e5, 1E-7, -0, 0.5e1, 12345678901234567890, NaN]", "OK [100000.0, 1e-07, 0, 5.0, 12345678901234567890, NaN]"},
		{"{\"a\":1,\"a\":2,\"b\":\"\\u00e9\\ud83d\\ude00\"}", "OK {\"a\": 2, \"b\": \"\\u00e9\\ud83d\\ude00\"}"},
	} {
		var got string
		v, err := pyLoads(tc.doc)
		if err != nil {
			got = "ERR " + err.Error()
		} else {
			s, err := pyDumps(v)
			if err != nil {
				t.Fatalf("%q: dumps: %v", tc.doc, err)
			}
			got = "OK " + s
		}
		if got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.doc, got, tc.want)
		}
	}
}

func TestPyFloatRepr(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{1.0, "1.0"},
		{1.5, "1.5"},
		{1e+16, "1e+16"},
		{1000000000000000.0, "1000000000000000.0"},
		{1.2345678901234568e+17, "1.2345678901234568e+17"},
		{0.0001, "0.0001"},
		{1e-05, "1e-05"},
		{1.5e+300, "1.5e+300"},
		{negZero(), "-0.0"},
		{2.5e-07, "2.5e-07"},
		{1e+22, "1e+22"},
		{3.14159, "3.14159"},
		{0.3333333333333333, "0.3333333333333333"},
		{-1.25e-09, "-1.25e-09"},
		{5e-324, "5e-324"},
		{1.7976931348623157e+308, "1.7976931348623157e+308"},
		{100.0, "100.0"},
		{0.1, "0.1"},
	} {
		if got := pyFloatRepr(tc.f); got != tc.want {
			t.Errorf("pyFloatRepr(%v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}

func negZero() float64 {
	z := 0.0
	return -z
}

func TestPyCompact(t *testing.T) {
	got := string(pyCompact(orderedObject{{"data", "<!json!>é\u2028\x01\"\\"}, {"number", 3}, {"l", []any{nil, true}}}))
	want := "{\"data\":\"<!json!>é\u2028\\u0001\\\"\\\\\",\"number\":3,\"l\":[null,true]}"
	if got != want {
		t.Errorf("pyCompact = %s, want %s", got, want)
	}
}
