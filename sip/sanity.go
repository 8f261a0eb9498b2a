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
// made here on the raw bytes. Streams get the same from checkedConn.
func (e *Edge) readFilter(p sipmsg.TransportReadProps, data []byte) ([]byte, error) {
	// CRLF keepalives (RFC 5626 4.4.1) are sipgo's to take.
	if !strings.EqualFold(p.Transport, "udp") || len(bytes.Trim(data, "\r\n")) == 0 {
		return data, nil
	}
	// What sipgo cannot parse it drops, and logs whole, per packet:
	// checkMessage parses first, which costs a second parse of every
	// datagram and buys a 400 and a log line bounded by logMalformed.
	code, reason := e.checkMessage(data)
	if code == 0 && reason == "" {
		return data, nil
	}
	if code == 0 {
		return nil, nil // a response sipgo could not parse: nothing to answer
	}
	e.logMalformed(p.RemoteAddr.String(), reason)
	if res := statelessResponse(e.parser, data, code, reason); res != nil {
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

func isResponse(data []byte) bool { return bytes.HasPrefix(data, []byte("SIP/")) }

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
	if isResponse(data) {
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
	// sipgo ends header lines at CRLF only, and would take a bare CR or
	// LF into a header's value, and so into the responses that echo it.
	for i, c := range head {
		if c == '\n' && (i == 0 || head[i-1] != '\r') || c == '\r' && (i+1 == len(head) || head[i+1] != '\n') {
			return 400, "Malformed Line Ending"
		}
	}
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
	if code, reason := checkRequestURI(parts[1]); code != 0 {
		return code, reason
	}

	var seen [5]bool // via, from, to, call-id, cseq
	contentLength := false
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
			// Two lengths leave the end of the message unknown (RFC 4475
			// 3.3.9), even when one of them fits.
			if contentLength {
				return 400, "Duplicate Content-Length"
			}
			contentLength = true
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

// checkRequestURI looks at the Request-URI of a request line: the edge
// takes sip, sips and tel URIs; another well-formed scheme gets 416 (RFC
// 3261 8.2.2.1), a URI that is no URI at all 400.
func checkRequestURI(uri string) (int, string) {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok || !isScheme(scheme) {
		return 400, "Malformed Request-URI"
	}
	switch strings.ToLower(scheme) {
	case "sip", "sips", "tel":
		return 0, ""
	}
	return 416, "Unsupported URI Scheme"
}

// isScheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3261 25.1).
func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
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
// (no Via, Call-ID or CSeq, or ones that do not parse), as such a request
// cannot be answered. The response must be one p parses: a peer's From or
// To that does not parse is left out rather than echoed, as the peer
// matches a response by Via and CSeq (RFC 3261 17.1.3) and its parser
// may be no kinder to the value than sipgo's.
func statelessResponse(p *sipmsg.Parser, data []byte, code int, reason string) []byte {
	for _, parties := range []bool{true, false} {
		res := buildResponse(data, code, reason, parties)
		if res == nil {
			return nil
		}
		if _, err := p.ParseSIP(res); err == nil {
			return res
		}
	}
	return nil
}

// buildResponse is statelessResponse's response, with the request's From
// and To or without.
func buildResponse(data []byte, code int, reason string, parties bool) []byte {
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
	var via, callID, cseq, copying bool
	for _, l := range lines[1:] {
		l = strings.TrimRight(l, "\r")
		if l != "" && (l[0] == ' ' || l[0] == '\t') {
			// a folded line: it goes with the header before it
			if copying {
				b.WriteString(l)
				b.WriteString("\r\n")
			}
			continue
		}
		copying = false
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
			if !parties {
				continue
			}
		default:
			continue
		}
		copying = true
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
		if !e.echoable(req) {
			// Its answer would not be SIP either: nothing to key it by.
			e.logMalformed(req.Source(), "Headers Not Echoable")
			return
		}
		if code, reason := checkParsed(req); code != 0 {
			e.logMalformed(req.Source(), reason)
			if !req.IsAck() {
				e.respond(tx, req, code, reason)
			}
			return
		}
		if tags := unsupported(req); tags != "" {
			e.respond(tx, req, 420, "Bad Extension", sipmsg.NewHeader("Unsupported", tags))
			return
		}
		h(req, tx)
	}
}

// checkParsed returns the status and reason a parsed request that is
// malformed gets, or 0. sipgo takes the first of repeated headers and
// parses URIs of any scheme; RFC 3261 does neither.
func checkParsed(req *sipmsg.Request) (int, string) {
	switch {
	case req.Via() == nil:
		return 400, "Missing Via"
	case req.From() == nil:
		return 400, "Missing From"
	case req.To() == nil:
		return 400, "Missing To"
	case req.CallID() == nil || req.CallID().Value() == "":
		return 400, "Missing Call-ID"
	case req.CSeq() == nil:
		return 400, "Missing CSeq"
	}
	for _, name := range []string{"From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length"} {
		if len(req.GetHeaders(name)) > 1 {
			return 400, "Duplicate " + name
		}
	}
	// sipgo upper-cases the method of the request line, not CSeq's; the
	// raw header keeps what the peer wrote.
	if f := strings.Fields(req.GetHeader("CSeq").Value()); len(f) != 2 || !strings.EqualFold(f[1], string(req.Method)) {
		return 400, "CSeq Method Does Not Match"
	}
	if code, reason := checkRequestURI(req.Recipient.Scheme + ":"); code != 0 {
		return code, reason
	}
	// Headers in a Request-URI are for building a request, not for one
	// on the wire (RFC 3261 19.1.5, RFC 4475 3.1.2.11).
	if len(req.Recipient.Headers) > 0 {
		return 400, "Headers In Request-URI"
	}
	return 0, ""
}

// echoable says whether the headers every response copies from req come
// out of sipgo in a form sipgo reads back. Its parser takes some values
// (a From of "sip:0:", a Via of "// 0") that it then writes as text no
// parser takes, and a response of those would be junk sent to the peer.
func (e *Edge) echoable(req *sipmsg.Request) bool {
	var b strings.Builder
	b.WriteString("SIP/2.0 400 Bad Request\r\n")
	for _, name := range []string{"Via", "From", "To", "Call-ID", "CSeq"} {
		for _, h := range req.GetHeaders(name) {
			h.StringWrite(&b)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	_, err := e.parser.ParseSIP([]byte(b.String()))
	return err == nil
}

// unsupported is the option tags of a request's Require the edge does not
// support: all of them, as it supports no extension a peer may require.
// ACK and CANCEL are never refused for it (RFC 3261 8.2.2.3).
func unsupported(req *sipmsg.Request) string {
	if req.IsAck() || req.IsCancel() {
		return ""
	}
	var tags []string
	for _, h := range req.GetHeaders("Require") {
		for _, t := range strings.Split(h.Value(), ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return strings.Join(tags, ", ")
}
