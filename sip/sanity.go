package sip

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// readFilter looks at every datagram before sipgo parses it. sipgo drops a
// request it cannot parse without a word; a carrier deserves a 400 that
// says what is wrong, so the structural checks a parser would trip on are
// made here, cheaply, on the raw bytes.
func (e *Edge) readFilter(p sipmsg.TransportReadProps, data []byte) ([]byte, error) {
	if !strings.EqualFold(p.Transport, "udp") {
		return data, nil
	}
	code, reason := checkDatagram(data)
	if code == 0 {
		return data, nil
	}
	e.log.Info().Str("source", p.RemoteAddr.String()).Str("reason", reason).Msg("malformed request")
	if res := statelessResponse(data, code, reason); res != nil {
		if pc := e.udpConn(p.LocalAddr); pc != nil {
			if _, err := pc.WriteTo(res, p.RemoteAddr); err == nil {
				e.countResponse(code)
			}
		}
	}
	return nil, nil
}

func (e *Edge) udpConn(local net.Addr) net.PacketConn {
	for _, pc := range e.udpConns {
		if pc.LocalAddr().String() == local.String() {
			return pc
		}
	}
	return nil
}

// compact forms of the headers every request must have (RFC 3261 7.3.3).
func canonicalHeader(name string) string {
	if len(name) == 1 {
		switch name[0] | 0x20 {
		case 'v':
			return "via"
		case 'f':
			return "from"
		case 't':
			return "to"
		case 'i':
			return "call-id"
		case 'l':
			return "content-length"
		}
	}
	return strings.ToLower(name)
}

// checkDatagram returns the status and reason a malformed request gets,
// or 0 for a message that may go on to the parser. Responses always go on.
func checkDatagram(data []byte) (int, string) {
	if bytes.HasPrefix(data, []byte("SIP/")) {
		return 0, ""
	}
	end := bytes.Index(data, []byte("\r\n\r\n"))
	sep := 4
	if end < 0 {
		if end = bytes.Index(data, []byte("\n\n")); end < 0 {
			return 400, "Incomplete Message"
		}
		sep = 2
	}
	head, body := data[:end], data[end+sep:]
	lineEnd := bytes.IndexByte(head, '\n')
	if lineEnd < 0 {
		lineEnd = len(head)
	}
	startLine := strings.TrimRight(string(head[:lineEnd]), "\r")
	parts := strings.Split(startLine, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return 400, "Malformed Request-Line"
	}
	method := parts[0]
	for _, c := range method {
		if !isToken(c) {
			return 400, "Malformed Method"
		}
	}
	if parts[2] != "SIP/2.0" {
		return 505, "Version Not Supported"
	}
	if !strings.Contains(parts[1], ":") {
		return 400, "Malformed Request-URI"
	}

	var seen [5]bool // via, from, to, call-id, cseq
	rest := head[min(lineEnd+1, len(head)):]
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		var line []byte
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i], rest[i+1:]
		}
		// folded lines continue the previous header
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			j := bytes.IndexByte(rest, '\n')
			if j < 0 {
				line, rest = append(append([]byte{}, line...), rest...), nil
				break
			}
			line, rest = append(append(append([]byte{}, line...), ' '), rest[:j]...), rest[j+1:]
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 400, "Malformed Header"
		}
		name := canonicalHeader(strings.TrimSpace(string(line[:colon])))
		value := strings.TrimSpace(string(line[colon+1:]))
		switch name {
		case "via":
			seen[0] = true
		case "from":
			seen[1] = true
		case "to":
			seen[2] = true
		case "call-id":
			if value == "" {
				return 400, "Empty Call-ID"
			}
			seen[3] = true
		case "cseq":
			if seen[4] {
				return 400, "Duplicate CSeq"
			}
			seen[4] = true
			f := strings.Fields(value)
			if len(f) != 2 {
				return 400, "Malformed CSeq"
			}
			if n, err := strconv.ParseUint(f[0], 10, 32); err != nil || n >= 1<<31 {
				return 400, "Malformed CSeq"
			}
			if f[1] != method {
				return 400, "CSeq Method Does Not Match"
			}
		case "max-forwards":
			if n, err := strconv.Atoi(value); err != nil || n < 0 || n > 255 {
				return 400, "Malformed Max-Forwards"
			}
		case "content-length":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return 400, "Malformed Content-Length"
			}
			if n > len(body) {
				return 400, "Content-Length Exceeds Body"
			}
		}
	}
	for i, ok := range seen {
		if !ok {
			return 400, "Missing " + [...]string{"Via", "From", "To", "Call-ID", "CSeq"}[i]
		}
	}
	return 0, ""
}

func isToken(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.ContainsRune("-.!%*_+`'~", c)
}

// statelessResponse builds a final response to a request sipgo could not
// take, from its raw header lines; nil when the request cannot be keyed
// (no Via, Call-ID or CSeq), as such a request cannot be answered.
func statelessResponse(data []byte, code int, reason string) []byte {
	end := bytes.Index(data, []byte("\n\r\n"))
	if end < 0 {
		end = bytes.Index(data, []byte("\n\n"))
	}
	if end < 0 {
		end = len(data)
	}
	lines := strings.Split(string(data[:end]), "\n")
	var b strings.Builder
	b.WriteString("SIP/2.0 ")
	b.WriteString(strconv.Itoa(code))
	b.WriteByte(' ')
	b.WriteString(reason)
	b.WriteString("\r\n")
	var via, callID, cseq bool
	for _, l := range lines[1:] {
		l = strings.TrimRight(l, "\r")
		colon := strings.IndexByte(l, ':')
		if colon <= 0 {
			continue
		}
		switch canonicalHeader(strings.TrimSpace(l[:colon])) {
		case "via":
			via = true
		case "call-id":
			callID = true
		case "cseq":
			cseq = true
		case "from", "to":
		default:
			continue
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	if !via || !callID || !cseq {
		return nil
	}
	b.WriteString("Server: callsign\r\nContent-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// sane puts the checks of checkDatagram in front of a handler for what came
// over a stream, where the read filter sees chunks, not messages: sipgo
// parses more than RFC 3261 allows, so its requests are checked here too.
func (e *Edge) sane(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if reason := checkParsed(req); reason != "" {
			e.log.Info().Str("source", req.Source()).Str("reason", reason).Msg("malformed request")
			if !req.IsAck() {
				e.respond(tx, req, 400, reason)
			}
			return
		}
		h(req, tx)
	}
}

// checkParsed returns why a parsed request is malformed, or "".
func checkParsed(req *sipmsg.Request) string {
	switch {
	case req.Via() == nil:
		return "Missing Via"
	case req.From() == nil:
		return "Missing From"
	case req.To() == nil:
		return "Missing To"
	case req.CallID() == nil || req.CallID().Value() == "":
		return "Missing Call-ID"
	case req.CSeq() == nil:
		return "Missing CSeq"
	case req.CSeq().MethodName != req.Method:
		return "CSeq Method Does Not Match"
	}
	return ""
}
