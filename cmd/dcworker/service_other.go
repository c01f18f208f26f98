//go:build !windows

package main

import "os"

// asService is for Windows services only.
func asService(chan<- os.Signal) (func(int), bool) { return nil, false }
