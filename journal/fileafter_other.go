//go:build !windows

package journal

// fileAfter is the size bbolt gives the file when a commit takes its
// high-water mark to hwm bytes: one page more, plus its AllocSize (see
// allocSize). (While the file's mapping is no larger than AllocSize, the
// file takes the mapping's size instead, which is less.)
func fileAfter(hwm, page, maxSize int64) int64 {
	return hwm + page + int64(allocSize(maxSize))
}
