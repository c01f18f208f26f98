package trackertest

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
)

// Display names look like the upstream tracker's: two lowercase words and a number from 0 to
// 999, joined by dashes ("pigs-moralizations-818").
var (
	nameAdjectives = []string{
		"amber", "brave", "calm", "dapper", "eager", "fancy", "gentle", "happy", "icy", "jolly",
		"keen", "lively", "merry", "nimble", "odd", "proud", "quick", "rapid", "shy", "tidy",
		"upbeat", "vivid", "witty", "young", "zesty", "bold", "crisp", "dusty", "fuzzy", "grand",
		"hollow", "lucky", "misty", "noble", "plucky", "quiet", "rusty", "sunny", "tender", "wild",
	}
	nameNouns = []string{
		"otter", "falcon", "maple", "comet", "harbor", "lantern", "meadow", "pebble", "quartz",
		"river", "saddle", "thistle", "walrus", "yarrow", "badger", "canyon", "dolphin", "ember",
		"fjord", "glacier", "heron", "island", "juniper", "kettle", "lagoon", "magnet", "nebula",
		"orchid", "pigeon", "raven", "spruce", "tundra", "violet", "willow", "zephyr", "anchor",
		"beacon", "cactus", "dune", "fossil",
	}
)

// newToken returns a random (version 4) UUID from crypto/rand.
func newToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newDisplayName draws a name with rng; the caller makes it unique.
func newDisplayName(rng *mrand.Rand) string {
	return fmt.Sprintf("%s-%s-%d", nameAdjectives[rng.IntN(len(nameAdjectives))],
		nameNouns[rng.IntN(len(nameNouns))], rng.IntN(1000))
}
