package sip

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// TestCheckedConn writes a stream to a checkedConn and reads back what
// sipgo would get, and what the peer is answered.
func TestCheckedConn(t *testing.T) {
	bad := strings.Replace(goodInvite, "CSeq: 1 INVITE", "CSeq: 1 BYE", 1)
	cases := []struct {
		name   string
		stream string
		passed string // what reaches sipgo
		answer string // start line the peer gets, if any
	}{
		{"two good messages in one write", goodInvite + goodInvite, goodInvite + goodInvite, ""},
		{"keepalive then a message", "\r\n\r\n" + goodInvite, "\r\n\r\n" + goodInvite, ""},
		{"a bad message between good ones", goodInvite + bad + goodInvite, goodInvite + goodInvite, "SIP/2.0 400 CSeq Method Does Not Match"},
		// Where framing is lost, what came with the message is dropped
		// and the connection stays for what comes after.
		{"two Content-Length", strings.Replace(goodInvite, "Content-Length: 4", "Content-Length: 4\r\nContent-Length: 4", 1), "", "SIP/2.0 400 Duplicate Content-Length"},
		{"no Content-Length", strings.Replace(goodInvite, "Content-Length: 4\r\n", "", 1), "", "SIP/2.0 400 Missing Content-Length"},
		{"body still to come", strings.Replace(goodInvite, "Content-Length: 4", "Content-Length: 40", 1), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			edgeSide, peer := net.Pipe()
			defer peer.Close()
			e := &Edge{log: zerolog.Nop(), parser: sipmsg.NewParser(), malformed: newMalformedLog(time.Now)}
			c := &checkedConn{Conn: edgeSide, e: e, buf: make([]byte, 7)} // a small buffer splits messages across reads
			answers := make(chan string, 4)
			go func() {
				rd := bufio.NewReader(peer)
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						close(answers)
						return
					}
					if strings.HasPrefix(line, "SIP/2.0 ") {
						answers <- strings.TrimSpace(line)
					}
				}
			}()
			go func() {
				_, _ = peer.Write([]byte(tc.stream))
				time.Sleep(50 * time.Millisecond)
				peer.Close()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Errorf("read error %v, want the peer's close", err)
			}
			// Stray line ends of a dropped message may pass as keepalives.
			if strings.Trim(string(got), "\r\n") != strings.Trim(tc.passed, "\r\n") {
				t.Errorf("passed to sipgo:\n%q\nwant\n%q", got, tc.passed)
			}
			edgeSide.Close()
			var first string
			for a := range answers {
				if first == "" {
					first = a
				}
			}
			if first != tc.answer {
				t.Errorf("answer %q, want %q", first, tc.answer)
			}
		})
	}
}
