package journal

// fileAfter is the size bbolt gives the file when a commit takes its
// high-water mark to hwm bytes. On Windows the file takes the size of its
// mapping, which bbolt sizes for one page more than the mark: a power of
// two from 32 KiB to 1 GiB, then whole GiBs.
func fileAfter(hwm, page, _ int64) int64 {
	need := hwm + page
	for size := int64(32 << 10); size <= 1<<30; size *= 2 {
		if need <= size {
			return size
		}
	}
	const step = 1 << 30
	return (need + step - 1) / step * step
}
