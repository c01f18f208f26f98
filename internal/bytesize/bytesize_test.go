package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "64KiB": 64 << 10, "16MiB": 16 << 20, "1GiB": 1 << 30, " 2 gb ": 2 << 30,
		"3k": 3 << 10, "5M": 5 << 20, "7B": 7, "8589934591G": 8589934591 << 30,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1KiB", "1.5GiB", "KiB", "1 TiB", "x", "8589934592G", "99999999999999999999"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1GiB", "64k", "0", "-1", "8589934592G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err == nil && n <= 0 {
			t.Fatalf("Parse(%q) = %d without an error", s, n)
		}
	})
}
