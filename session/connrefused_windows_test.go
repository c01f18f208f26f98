//go:build windows

package session_test

import "syscall"

// errConnRefused is the error a dial to a closed loopback port wraps:
// WSAECONNREFUSED (syscall.ECONNREFUSED is an invented value on Windows that
// no socket call returns).
const errConnRefused = syscall.Errno(10061)
