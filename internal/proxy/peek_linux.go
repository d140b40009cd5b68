package proxy

import (
	"syscall"
	"unsafe"
)

// peekAlive reports whether a connected TCP socket with nothing expected on it is still
// open: a non-blocking MSG_PEEK finds no data (EAGAIN). EOF or unasked data mean the
// connection must not carry another request.
func peekAlive(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN
}
