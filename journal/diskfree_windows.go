package journal

import (
	"path/filepath"
	"syscall"
	"unsafe"
)

var procGetDiskFreeSpaceEx = syscall.NewLazyDLL("kernel32.dll").NewProc("GetDiskFreeSpaceExW")

// diskFree returns the bytes the calling user may still use on the volume
// that holds path (read-only volumes are not told apart: a write fails).
func diskFree(path string) (free int64, readOnly bool, err error) {
	dir, err := syscall.UTF16PtrFromString(filepath.Dir(path))
	if err != nil {
		return 0, false, err
	}
	var avail, total, totalFree uint64
	r, _, err := procGetDiskFreeSpaceEx.Call(uintptr(unsafe.Pointer(dir)),
		uintptr(unsafe.Pointer(&avail)), uintptr(unsafe.Pointer(&total)), uintptr(unsafe.Pointer(&totalFree)))
	if r == 0 {
		return 0, false, err
	}
	return int64(avail), false, nil
}

// probeWrite does nothing on Windows: a read-only volume fails the next
// write, which stops the journal.
func probeWrite(string) error { return nil }
