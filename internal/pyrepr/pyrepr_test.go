package pyrepr_test

import (
	"math"
	"testing"

	"github.com/distcompute/distcompute-go/internal/pyrepr"
)

func TestFloat(t *testing.T) {
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
		{math.Copysign(0, -1), "-0.0"},
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
		if got := pyrepr.Float(tc.f); got != tc.want {
			t.Errorf("Float(%v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}
