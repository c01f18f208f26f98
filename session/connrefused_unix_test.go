//go:build unix

package session_test

import "syscall"

// errConnRefused is the error a dial to a closed loopback port wraps.
const errConnRefused = syscall.ECONNREFUSED
