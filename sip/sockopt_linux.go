package sip

import "syscall"

// udpReadBuffer is the receive buffer the SIP UDP socket asks for: bursts
// of hundreds of calls a second overflow the kernel's default (about
// 200 kB), and a dropped 200 OK or BYE costs a retransmission round or a
// call.
const udpReadBuffer = 8 << 20

// growReadBuffer raises a socket's receive buffer, past net.core.rmem_max
// where the process may (CAP_NET_ADMIN), else as far as the kernel allows.
func growReadBuffer(c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, udpReadBuffer) != nil {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, udpReadBuffer)
		}
	})
}
