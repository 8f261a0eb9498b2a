//go:build !linux

package sip

import "syscall"

// growReadBuffer leaves the kernel's default elsewhere than on Linux.
func growReadBuffer(syscall.RawConn) error { return nil }
