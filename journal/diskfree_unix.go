//go:build !windows

package journal

import "syscall"

// probeWrite opens path for writing and closes it at once: the file system
// answers EROFS when it turned read-only, whatever its mount flags say. The
// file lock belongs to bbolt's descriptor (flock, per open file), so
// closing this one keeps it. Plain syscalls: an *os.File would register
// with the runtime's poller and set a finalizer, three times the cost.
func probeWrite(path string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return syscall.Close(fd)
}
