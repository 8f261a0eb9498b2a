package sip

import (
	"bytes"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// checkedListener gives sipgo connections that pass it only whole
// messages that passed the checks a datagram gets in readFilter. sipgo's
// stream parser closes a connection at the first message it cannot
// parse, without a word, and with it responses still to be sent for the
// messages before; a carrier on TCP deserves the 400 a carrier on UDP
// gets, and its connection kept.
type checkedListener struct {
	net.Listener
	e *Edge
}

func (l checkedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &checkedConn{Conn: c, e: l.e, buf: make([]byte, 16<<10)}, nil
}

// checkedConn frames what it reads into messages (RFC 3261 18.3: the
// header, then Content-Length bytes). Only sipgo's read loop reads it;
// writes go straight through.
type checkedConn struct {
	net.Conn
	e   *Edge
	buf []byte
	in  []byte   // read, not yet framed
	out [][]byte // framed, for sipgo, in order
	err error
	// handshaken: a TLS connection's handshake has been run (and
	// bounded in time).
	handshaken bool
}

const tlsHandshakeTimeout = 10 * time.Second

func (c *checkedConn) Read(p []byte) (int, error) {
	if tc, ok := c.Conn.(*tls.Conn); ok && !c.handshaken {
		// A peer that connects and never finishes the handshake would
		// hold this connection's goroutine for good.
		c.handshaken = true
		_ = tc.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			c.e.log.Debug().Err(err).Str("from", tc.RemoteAddr().String()).Msg("sip tls handshake failed")
			c.err = err
			return 0, err
		}
		_ = tc.SetDeadline(time.Time{})
	}
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.Conn.Read(c.buf)
		c.in = append(c.in, c.buf[:n]...)
		c.frame()
		if err != nil {
			c.err = err
		}
	}
	n := copy(p, c.out[0])
	if c.out[0] = c.out[0][n:]; len(c.out[0]) == 0 {
		c.out = c.out[1:]
	}
	return n, nil
}

// frame moves the complete messages of c.in to c.out, answering and
// leaving out the malformed ones.
func (c *checkedConn) frame() {
	for {
		// CRLFs between messages are keepalives (RFC 5626 3.5.1); sipgo
		// answers them when they come alone.
		i := 0
		for i < len(c.in) && (c.in[i] == '\r' || c.in[i] == '\n') {
			i++
		}
		if i > 0 {
			c.out = append(c.out, bytes.Clone(c.in[:i]))
			c.in = c.in[i:]
		}
		end, sep := headerEnd(c.in)
		if end < 0 {
			if len(c.in) > sipmsg.ParseMaxMessageLength {
				c.reject(c.in, 400, "Message Too Large")
			}
			return
		}
		n, reason := streamContentLength(c.in[:end])
		if reason == "" && end+sep+n > sipmsg.ParseMaxMessageLength {
			reason = "Message Too Large"
		}
		if reason != "" {
			c.reject(c.in[:end+sep], 400, reason)
			continue
		}
		size := end + sep + n
		if len(c.in) < size {
			return
		}
		msg := bytes.Clone(c.in[:size])
		c.in = c.in[size:]
		if !c.e.admit(c.RemoteAddr(), msg) {
			continue // dropped by the guard, unanswered
		}
		if code, reason := c.e.checkMessage(msg); code != 0 {
			c.answer(msg, code, reason)
			continue
		} else if reason != "" {
			continue // a response sipgo would choke on: dropped
		}
		c.out = append(c.out, msg)
	}
}

// reject answers what it can of a message whose end cannot be found, and
// drops what came with it. The connection stays: closing it would lose
// the responses sipgo has yet to send to the messages before, and what
// comes next is checked like anything else.
func (c *checkedConn) reject(head []byte, code int, reason string) {
	c.answer(head, code, reason)
	c.in = nil
}

func (c *checkedConn) answer(msg []byte, code int, reason string) {
	c.e.logMalformed(c.RemoteAddr().String(), reason)
	if isResponse(msg) {
		return
	}
	if res := statelessResponse(c.e.parser, msg, code, reason); res != nil {
		if _, err := c.Conn.Write(res); err == nil {
			c.e.countResponse(code)
		}
	}
}

// headerEnd is where the header of data ends, and the length of the
// empty line there; -1 while it has not come.
func headerEnd(data []byte) (int, int) {
	crlf := bytes.Index(data, []byte("\r\n\r\n"))
	lf := bytes.Index(data, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf < lf):
		return crlf, 4
	case lf >= 0:
		return lf, 2
	}
	return -1, 0
}

// streamContentLength is the body length a header declares, or why it
// cannot be known.
func streamContentLength(head []byte) (int, string) {
	n, seen := 0, false
	for _, line := range strings.Split(string(head), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || canonicalHeader(strings.TrimSpace(name)) != "content-length" {
			continue
		}
		if seen {
			return 0, "Duplicate Content-Length"
		}
		seen = true
		v, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil || v < 0 {
			return 0, "Malformed Content-Length"
		}
		n = v
	}
	if !seen {
		// It ends each message of a stream (RFC 3261 18.3); sipgo
		// closes the connection without one too.
		return 0, "Missing Content-Length"
	}
	return n, ""
}

// checkMessage is what a whole message gets before sipgo parses it: the
// status and reason a malformed request gets, or for a response that
// cannot be parsed 0 and a reason.
func (e *Edge) checkMessage(msg []byte) (int, string) {
	code, reason := checkDatagram(msg)
	if code != 0 {
		return code, reason
	}
	if _, err := e.parser.ParseSIP(msg); err != nil {
		if isResponse(msg) {
			return 0, "Malformed Response"
		}
		return 400, "Malformed Message"
	}
	return 0, ""
}
