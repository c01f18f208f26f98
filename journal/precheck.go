package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"io/fs"
	"os"
)

// The structural pre-check.
//
// bbolt trusts its file: it maps it and follows page ids, element offsets
// and overflow counts wherever they point. On a damaged file that means a
// fault on an unmapped page, a panic on a page of the wrong type, or, worst,
// a panic in a goroutine nobody can recover: a writable open of a file whose
// freelist is not persisted rebuilds it by walking every page
// (DB.freepages), and that walk panics in a goroutine of its own on the
// first inconsistency it meets ("freepages: failed to get all reachable
// pages"), which kills the process; its sibling tx.Check (Verify) does the
// same walk in a goroutine too. A huge overflow field (0x7F000000) makes
// those walks allocate one map entry per page it claims: gigabytes, for
// minutes.
//
// So before bbolt may open a file, precheck reads it with plain reads
// (os.File.ReadAt: no mapping, so nothing can fault) and checks everything
// those walks rely on: the meta page bbolt will use (magic, version,
// checksum, a sane page size, root and freelist ids inside the file, the
// high-water mark inside the file); the freelist page when there is one
// (its type, its ids inside the file, each once); and the whole page tree
// from the root bucket down through every bucket: every page id inside the
// file and past the meta pages, its header naming it, its type (branch or
// leaf), its overflow inside the file, its elements and keys inside the
// page, keys in order within the page and within their parent's range (the
// check bbolt's walk makes), and no page reached twice (a loop, or a page
// shared by two parents, or a tree page also on the freelist). Every page is
// read at most once, so the check is bounded by the file's page count, and
// its memory by one bit per page plus the pages on the current path.
//
// Why a check of our own rather than persisting bbolt's freelist
// (NoFreelistSync=false) for every file: a persisted freelist removes the
// walk at a writable Open, but not the one of tx.Check (Verify loads the
// freelist the same way when it is not written), not the files written by
// earlier versions, and not the reads themselves: a cursor follows branch
// pages by recursion, and a branch that points at itself makes it recurse
// until the stack limit, a fatal error no recover catches (the corruption
// corpus test has such a file). Persisting it also costs a page write per
// commit, a few percent of a durable append. So the freelist stays unwritten
// under FreelistSyncSize as before, and the check walks the whole tree at
// every Open, whatever the file's size.
//
// Cost: a read of every page of the tree, once, one read call per page (or
// per page and its overflow), into a buffer per tree level: about 0.2 to
// 0.6 ms per MiB of journal on the development VM, the more the smaller its
// records (journal/BENCHMARKS.md: BenchmarkPrecheck, BenchmarkOpenStates1M),
// and memory of one bit per page. So Open's time now grows with the file's
// size. Under FreelistSyncSize a writable Open had bbolt walk every page
// anyway, so the check at most doubles it; a journal of default retention
// stays far under that size. A journal of hundreds of MiB (kept history,
// Retention < 0) pays about a third of a second per Open that it did not
// before (1M events, 346 MB: 0.2-0.3 ms before, 170-200 ms after).

// Page layout of bbolt v1.4 (go.etcd.io/bbolt/internal/common), native
// little-endian: a 16-byte header (id uint64, flags uint16, count uint16,
// overflow uint32), then the elements.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderSize  = 16
	metaSize        = 64 // magic, version, pageSize, flags, root (pgid, sequence), freelist, pgid, txid, checksum
	metaChecksumOff = 56
	elemSize        = 16 // a branch element (pos, ksize, pgid) and a leaf element (flags, pos, ksize, vsize)
	bucketHeaderLen = 16 // a bucket value: root pgid, sequence; then the inline page when root is 0

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	leafBucket   = 0x01

	noFreelistPage = ^uint64(0)

	minPageSize = 1 << 10
	maxPageSize = 1 << 16
	// maxTreeDepth bounds the page tree's depth and the nesting of buckets;
	// bbolt's trees are a few levels deep, the journal's buckets one.
	maxTreeDepth = 64
)

// precheck checks the structure of the bbolt file at path before bbolt opens
// it (see above). A missing file (writable: it will be created) and an empty
// one (writable: bbolt initialises it) pass.
func precheck(path string, readOnly bool) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !readOnly {
			return nil // will be created
		}
		return openErr(path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return openErr(path, err)
	}
	if !fi.Mode().IsRegular() {
		return openErr(path, &NotJournalError{Reason: "not a regular file"})
	}
	if fi.Size() == 0 {
		if readOnly {
			return openErr(path, &NotJournalError{Reason: "the file is empty"})
		}
		return nil // bbolt initialises empty files (a crash during creation)
	}
	if err := checkStructure(f, fi.Size()); err != nil {
		return openErr(path, err)
	}
	return nil
}

// checkStructure is precheck on an open file of size bytes: nil, a
// *NotJournalError or a *CorruptError.
func checkStructure(f readerAt, size int64) error {
	m, err := currentMeta(f, size)
	if err != nil {
		return err
	}
	c := &structCheck{f: f, ps: int64(m.pageSize), hwm: m.hwm}
	c.seen = make([]uint64, (m.hwm+63)/64)
	// bbolt asserts the headers of both meta pages whenever it checks the
	// file (tx.Check), even of one whose contents it does not use.
	for id := uint64(0); id < 2; id++ {
		hdr := make([]byte, pageHeaderSize)
		if _, err := f.ReadAt(hdr, int64(id)*c.ps); err != nil {
			return corrupt("", 0, "bbolt meta page %d cannot be read: %v", id, err)
		}
		if hid, flags := binary.LittleEndian.Uint64(hdr), binary.LittleEndian.Uint16(hdr[8:]); hid != id || flags != flagMeta {
			return corrupt("", 0, "the header of bbolt meta page %d is damaged", id)
		}
		c.mark(id)
	}
	if m.freelist != noFreelistPage {
		if err := c.freelist(m.freelist); err != nil {
			return err
		}
	}
	if err := c.bucket(m.root, 0); err != nil {
		return err
	}
	if m.freelist != noFreelistPage {
		// With a written freelist every page is in use or free; without
		// one, bbolt takes every page it does not reach as free.
		for id := uint64(2); id < m.hwm; id++ {
			if c.seen[id/64]&(1<<(id%64)) == 0 {
				return corrupt("", 0, "bbolt page %d is neither reached nor free (a lost part of the tree)", id)
			}
		}
	}
	return nil
}

type readerAt interface {
	ReadAt(p []byte, off int64) (int, error)
}

type boltMeta struct {
	valid    bool
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64
	txid     uint64
}

// currentMeta finds the page size as bbolt does (meta page 0, else the
// second meta page at the offsets bbolt tries), then the meta page bbolt will
// use (the valid one with the higher txid), and checks its fields.
func currentMeta(f readerAt, size int64) (boltMeta, error) {
	var ps int64
	sawMagic := false
	m0, ok := readMeta(f, 0)
	if ok {
		sawMagic = true
		if m0.valid {
			ps = int64(m0.pageSize)
		}
	}
	if ps == 0 {
		for i := 0; i <= 14; i++ {
			pos := int64(1024) << i
			if pos >= size-1024 {
				break
			}
			if m1, ok := readMeta(f, pos); ok {
				sawMagic = true
				if m1.valid {
					ps = int64(m1.pageSize)
					break
				}
			}
		}
	}
	if !sawMagic {
		return boltMeta{}, &NotJournalError{Reason: "not a bbolt database file"}
	}
	if ps == 0 {
		return boltMeta{}, corrupt("", 0, "both bbolt meta pages are damaged")
	}
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return boltMeta{}, corrupt("", 0, "bbolt page size %d is not a power of two from %d to %d", ps, minPageSize, maxPageSize)
	}
	var metas []boltMeta
	for _, off := range []int64{0, ps} {
		if m, ok := readMeta(f, off); ok && m.valid {
			if int64(m.pageSize) != ps {
				return boltMeta{}, corrupt("", 0, "the bbolt meta pages disagree on the page size (%d, %d)", ps, m.pageSize)
			}
			metas = append(metas, m)
		}
	}
	if len(metas) == 0 {
		return boltMeta{}, corrupt("", 0, "both bbolt meta pages are damaged")
	}
	m := metas[0]
	if len(metas) == 2 && metas[1].txid > m.txid {
		m = metas[1]
	}
	pages := size / ps
	switch {
	case size < 2*ps || m.hwm > uint64(pages):
		return boltMeta{}, corrupt("", 0, "truncated: the file has %d bytes, its pages need %d", size, int64(m.hwm)*ps)
	case m.hwm < 3:
		return boltMeta{}, corrupt("", 0, "the bbolt meta page counts %d pages, too few for a root", m.hwm)
	case m.root < 2 || m.root >= m.hwm:
		return boltMeta{}, corrupt("", 0, "the bbolt root page %d is outside pages 2 to %d", m.root, m.hwm-1)
	case m.freelist != noFreelistPage && (m.freelist < 2 || m.freelist >= m.hwm):
		return boltMeta{}, corrupt("", 0, "the bbolt freelist page %d is outside pages 2 to %d", m.freelist, m.hwm-1)
	}
	return m, nil
}

// readMeta decodes the bbolt meta page at off: ok if it has bbolt's magic,
// valid if its version and checksum are right too.
func readMeta(f readerAt, off int64) (boltMeta, bool) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return boltMeta{}, false
	}
	b := buf[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != boltMagic {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(b[:metaChecksumOff])
	return boltMeta{
		valid:    le.Uint32(b[4:]) == boltVersion && h.Sum64() == le.Uint64(b[metaChecksumOff:]),
		pageSize: le.Uint32(b[8:]),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		hwm:      le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}, true
}

// structCheck walks the pages of a file: ps is the page size, hwm the
// high-water mark (pages below it are in the file), seen one bit per page
// reached.
type structCheck struct {
	f    readerAt
	ps   int64
	hwm  uint64
	seen []uint64
	bufs [][]byte // a page buffer per tree level (see page)
}

func (c *structCheck) mark(id uint64) bool {
	w, b := id/64, uint64(1)<<(id%64)
	if c.seen[w]&b != 0 {
		return false
	}
	c.seen[w] |= b
	return true
}

// page reads page id (with its overflow pages) after checking it is inside
// the file, names itself, has one of the flags in want, and that neither it
// nor its overflow pages were reached before. The page is read into the
// buffer of the given tree level, reused by the next page read at that
// level: a walk keeps the pages of its current path, never the whole file.
func (c *structCheck) page(id uint64, want uint16, level int) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, corrupt("", 0, "bbolt page %d is outside pages 2 to %d", id, c.hwm-1)
	}
	for len(c.bufs) <= level {
		c.bufs = append(c.bufs, make([]byte, c.ps))
	}
	buf := c.bufs[level][:c.ps]
	if _, err := c.f.ReadAt(buf, int64(id)*c.ps); err != nil {
		return nil, corrupt("", 0, "bbolt page %d cannot be read: %v", id, err)
	}
	le := binary.LittleEndian
	hid, flags, overflow := le.Uint64(buf), le.Uint16(buf[8:]), uint64(le.Uint32(buf[12:]))
	switch {
	case hid != id:
		return nil, corrupt("", 0, "bbolt page %d says it is page %d", id, hid)
	case flags&want == 0 || flags&^want != 0:
		return nil, corrupt("", 0, "bbolt page %d has type flags %#x, want %#x", id, flags, want)
	case overflow >= c.hwm-id:
		return nil, corrupt("", 0, "bbolt page %d claims %d overflow pages, past the end of the file", id, overflow)
	}
	for i := uint64(0); i <= overflow; i++ {
		if !c.mark(id + i) {
			return nil, corrupt("", 0, "bbolt page %d is reached twice (a loop, or a page shared or also free)", id+i)
		}
	}
	if overflow > 0 {
		n := int64(overflow+1) * c.ps
		if int64(cap(buf)) < n {
			buf = append(buf[:c.ps], make([]byte, n-c.ps)...)
			c.bufs[level] = buf
		}
		buf = buf[:n]
		if _, err := c.f.ReadAt(buf[c.ps:], int64(id)*c.ps+c.ps); err != nil {
			return nil, corrupt("", 0, "bbolt page %d cannot be read: %v", id, err)
		}
	}
	return buf, nil
}

// freelist checks the freelist page: its ids are inside the file, past the
// meta pages, each listed once; they are marked so that the tree may not
// reach them.
func (c *structCheck) freelist(id uint64) error {
	p, err := c.page(id, flagFreelist, 0)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	n, start := uint64(le.Uint16(p[10:])), pageHeaderSize
	if n == 0xFFFF { // the count overflows into the first element
		n, start = le.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > uint64(len(p)-start)/8 {
		return corrupt("", 0, "bbolt freelist page %d lists %d pages, more than it holds", id, n)
	}
	for i := uint64(0); i < n; i++ {
		free := le.Uint64(p[start+int(i)*8:])
		if free < 2 || free >= c.hwm {
			return corrupt("", 0, "bbolt freelist page %d lists page %d, outside pages 2 to %d", id, free, c.hwm-1)
		}
		if !c.mark(free) {
			return corrupt("", 0, "bbolt freelist page %d lists page %d twice, or a page in use", id, free)
		}
	}
	return nil
}

// bucket checks the tree of a bucket whose root page is root, and its
// buckets.
func (c *structCheck) bucket(root uint64, depth int) error {
	var children []uint64
	if _, err := c.tree(root, nil, nil, depth, &children); err != nil {
		return err
	}
	for _, ch := range children {
		if err := c.bucket(ch, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// tree checks the page id and the pages under it as bbolt's key order check
// does: every key at least min (when given) and under max (when given), keys
// increasing within a page and across its children. It returns the greatest
// key under id (nil for an empty leaf, as bbolt) and appends the root pages
// of the buckets its leaves hold to buckets.
func (c *structCheck) tree(id uint64, min, max []byte, depth int, buckets *[]uint64) ([]byte, error) {
	if depth > maxTreeDepth {
		return nil, corrupt("", 0, "bbolt pages nest deeper than %d levels", maxTreeDepth)
	}
	p, err := c.page(id, flagBranch|flagLeaf, depth)
	if err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint16(p[8:]) == flagBranch {
		keys, kids, err := branchElems(p, id)
		if err != nil {
			return nil, err
		}
		running := min
		var greatest []byte
		for i, k := range keys {
			if err := keyInOrder(id, i, k, running, max); err != nil {
				return nil, err
			}
			next := max
			if i < len(keys)-1 {
				next = keys[i+1]
			}
			greatest, err = c.tree(kids[i], k, next, depth+1, buckets)
			if err != nil {
				return nil, err
			}
			running = greatest
		}
		return greatest, nil
	}
	running := min
	var last []byte
	err = leafElems(p, id, func(i int, k, v []byte, flags uint32) error {
		if err := keyInOrder(id, i, k, running, max); err != nil {
			return err
		}
		running, last = k, k
		if flags&leafBucket != 0 {
			return c.bucketValue(id, v, depth, buckets)
		}
		return nil
	})
	return last, err
}

// bucketValue checks a bucket's value in a leaf of page id: a non-inline
// bucket's root joins buckets, an inline bucket's page is checked in place.
func (c *structCheck) bucketValue(id uint64, v []byte, depth int, buckets *[]uint64) error {
	if len(v) < bucketHeaderLen {
		return corrupt("", 0, "bbolt page %d holds a bucket value of %d bytes", id, len(v))
	}
	if root := binary.LittleEndian.Uint64(v); root != 0 {
		*buckets = append(*buckets, root)
		return nil
	}
	inline := v[bucketHeaderLen:]
	if len(inline) < pageHeaderSize || binary.LittleEndian.Uint16(inline[8:]) != flagLeaf {
		return corrupt("", 0, "bbolt page %d holds an inline bucket without a leaf page", id)
	}
	if depth >= maxTreeDepth {
		return corrupt("", 0, "bbolt buckets nest deeper than %d levels", maxTreeDepth)
	}
	var running []byte
	return leafElems(inline, id, func(i int, k, v []byte, flags uint32) error {
		if err := keyInOrder(id, i, k, running, nil); err != nil {
			return err
		}
		running = k
		if flags&leafBucket != 0 {
			return c.bucketValue(id, v, depth+1, buckets)
		}
		return nil
	})
}

// keyInOrder is bbolt's verifyKeyOrder: the first key of a page at least
// the smallest its parent allows, the others above the one before, all
// under max.
func keyInOrder(id uint64, i int, k, prev, max []byte) error {
	switch {
	case i == 0 && prev != nil && bytes.Compare(prev, k) > 0,
		i > 0 && bytes.Compare(prev, k) >= 0,
		max != nil && bytes.Compare(k, max) >= 0:
		return corrupt("", 0, "bbolt page %d: key %d is out of order", id, i)
	}
	return nil
}

// branchElems returns the keys and child page ids of branch page p.
func branchElems(p []byte, id uint64) (keys [][]byte, kids []uint64, err error) {
	le := binary.LittleEndian
	n := int(le.Uint16(p[10:]))
	if n == 0 || pageHeaderSize+n*elemSize > len(p) {
		return nil, nil, corrupt("", 0, "bbolt branch page %d counts %d elements", id, n)
	}
	for i := 0; i < n; i++ {
		e := pageHeaderSize + i*elemSize
		pos, ksize := uint64(le.Uint32(p[e:])), uint64(le.Uint32(p[e+4:]))
		if uint64(e)+pos+ksize > uint64(len(p)) {
			return nil, nil, corrupt("", 0, "bbolt branch page %d: key %d is outside the page", id, i)
		}
		keys = append(keys, p[uint64(e)+pos:uint64(e)+pos+ksize])
		kids = append(kids, le.Uint64(p[e+8:]))
	}
	return keys, kids, nil
}

// leafElems calls fn with each key, value and flags of the leaf page p (a
// page of the file, or an inline bucket's page inside page id).
func leafElems(p []byte, id uint64, fn func(i int, k, v []byte, flags uint32) error) error {
	le := binary.LittleEndian
	n := int(le.Uint16(p[10:]))
	if pageHeaderSize+n*elemSize > len(p) {
		return corrupt("", 0, "bbolt leaf page %d counts %d elements, more than it holds", id, n)
	}
	for i := 0; i < n; i++ {
		e := pageHeaderSize + i*elemSize
		flags := le.Uint32(p[e:])
		pos, ksize, vsize := uint64(le.Uint32(p[e+4:])), uint64(le.Uint32(p[e+8:])), uint64(le.Uint32(p[e+12:]))
		if flags&^leafBucket != 0 {
			return corrupt("", 0, "bbolt leaf page %d: element %d has flags %#x", id, i, flags)
		}
		start := uint64(e) + pos
		if start+ksize+vsize > uint64(len(p)) {
			return corrupt("", 0, "bbolt leaf page %d: element %d is outside the page", id, i)
		}
		if err := fn(i, p[start:start+ksize], p[start+ksize:start+ksize+vsize], flags); err != nil {
			return err
		}
	}
	return nil
}
