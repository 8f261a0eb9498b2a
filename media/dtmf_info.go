package media

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Errors of ParseDTMFInfo, to be told apart with errors.Is: the SIP layer
// answers the first with 415 (and an Accept header) and the second with 400.
var (
	ErrDTMFContentType = errors.New("media: unsupported DTMF INFO content type")
	ErrDTMFBody        = errors.New("media: malformed DTMF INFO body")
)

// ParseDTMFInfo returns the key carried by the body of a SIP INFO request,
// in the alphabet of EventDetector ("0"-"9", '*', '#', 'A'-'D').
//
// Two content types are understood (parameters are ignored, the type is
// case-insensitive):
//
//   - application/dtmf-relay: lines of Key=Value separated by LF or CRLF,
//     keys case-insensitive, spaces around either ignored; Signal is the
//     key and every other line (Duration, ...) is ignored. Signal may also
//     be an RFC 4733 event code 10-15, as some phones send "10" for '*'
//     and "11" for '#'.
//   - application/dtmf: the body is the key itself, e.g. "5", with the same
//     numeric codes accepted.
//
// Hook flash (Signal=16 or '!') is not a key and is an error.
func ParseDTMFInfo(contentType string, body []byte) (digit byte, err error) {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.TrimSpace(mediaType)
	switch {
	case strings.EqualFold(mediaType, "application/dtmf-relay"):
		return parseDTMFRelay(body)
	case strings.EqualFold(mediaType, "application/dtmf"):
		v := bytes.TrimSpace(body)
		if bytes.IndexByte(v, '=') >= 0 {
			return 0, fmt.Errorf("%w: application/dtmf body %q is key=value, want the digit alone", ErrDTMFBody, v)
		}
		return dtmfSignal(v)
	default:
		return 0, fmt.Errorf("%w %q, want application/dtmf-relay or application/dtmf", ErrDTMFContentType, contentType)
	}
}

func parseDTMFRelay(body []byte) (byte, error) {
	var signal []byte
	found := false
	for rest := body; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		line = bytes.TrimSpace(line) // also drops the CR of CRLF
		if len(line) == 0 {
			continue
		}
		key, value, ok := bytes.Cut(line, []byte{'='})
		if !ok {
			return 0, fmt.Errorf("%w: line %q is not Key=Value", ErrDTMFBody, line)
		}
		if !bytes.EqualFold(bytes.TrimSpace(key), []byte("signal")) {
			continue
		}
		if found {
			// Two keys in one INFO is not something a phone sends; guessing
			// which one was meant would put a wrong digit into a menu.
			return 0, fmt.Errorf("%w: more than one Signal line", ErrDTMFBody)
		}
		signal, found = bytes.TrimSpace(value), true
	}
	if !found {
		return 0, fmt.Errorf("%w: no Signal line in application/dtmf-relay body", ErrDTMFBody)
	}
	return dtmfSignal(signal)
}

// dtmfSignal interprets one signal value: a key character, or an RFC 4733
// event code 0-15 written in decimal.
func dtmfSignal(v []byte) (byte, error) {
	switch {
	case len(v) == 0:
		return 0, fmt.Errorf("%w: empty signal", ErrDTMFBody)
	case len(v) == 1 && strings.IndexByte(dtmfEventDigits, v[0]) >= 0:
		return v[0], nil
	case len(v) == 1 && v[0] >= 'a' && v[0] <= 'd':
		return v[0] - 'a' + 'A', nil
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return dtmfEventDigits[10+v[1]-'0'], nil
	case string(v) == "16" || string(v) == "!":
		return 0, fmt.Errorf("%w: signal %q is a hook flash, not a key", ErrDTMFBody, v)
	default:
		return 0, fmt.Errorf("%w: signal %q is not a DTMF key", ErrDTMFBody, v)
	}
}
