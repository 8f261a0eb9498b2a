package events

import (
	"maps"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/callsign/callsign/call"
)

// timeLayout always writes three fractional digits so that consumers can
// parse every timestamp with one fixed layout; UTC makes the zone "Z".
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// MarshalEvent encodes one event as the documented JSON object.
//
// It is hand-written rather than encoding/json because it runs for every
// event of every call; it appends into one buffer sized from the record.
// A field the record does not know yet (empty string, zero time, a
// duration whose ok is false) is left out rather than written as a zero.
func MarshalEvent(event string, id string, at time.Time, rec call.Record) ([]byte, error) {
	b := make([]byte, 0, estimateSize(event, id, &rec))
	b = append(b, '{')
	b = appendStringField(b, "event", event, true)
	b = appendStringField(b, "id", id, false)
	b = appendTimeField(b, "at", at)
	b = appendStringField(b, "call_id", rec.ID, false)
	b = appendStringField(b, "sip_call_id", rec.SIPCallID, false)
	b = appendStringField(b, "caller", rec.Caller, false)
	b = appendStringField(b, "caller_name", rec.CallerName, false)
	b = appendStringField(b, "tracking_number", rec.TrackingNumber, false)
	b = appendStringField(b, "source", rec.Source, false)
	b = appendStringField(b, "medium", rec.Medium, false)
	b = appendStringField(b, "campaign", rec.Campaign, false)
	b = appendStringField(b, "keyword", rec.Keyword, false)
	b = appendStringField(b, "pool", rec.Pool, false)
	if v := rec.Visitor; v != nil {
		b = append(b, `,"visitor":{`...)
		n := len(b)
		for _, f := range [...]struct{ k, v string }{
			{"utm_source", v.UTMSource}, {"utm_medium", v.UTMMedium}, {"utm_campaign", v.UTMCampaign},
			{"utm_term", v.UTMTerm}, {"utm_content", v.UTMContent}, {"gclid", v.GCLID}, {"gbraid", v.GBRAID},
			{"wbraid", v.WBRAID}, {"fbclid", v.FBCLID}, {"msclkid", v.MSCLKID}, {"referrer", v.Referrer},
			{"landing_page", v.LandingPage},
		} {
			b = appendStringField(b, f.k, f.v, false)
		}
		// Sorted, so the same visit always encodes the same; the config
		// refuses names that would clash with the fields above.
		for _, k := range slices.Sorted(maps.Keys(v.ClickIDs)) {
			b = appendStringField(b, k, v.ClickIDs[k], false)
		}
		b = appendTimeField(b, "first_seen", v.FirstSeen)
		// The fields went in with a leading comma each; the object's
		// first must not have one.
		if len(b) > n {
			b = append(b[:n], b[n+1:]...)
		}
		b = append(b, '}')
	}
	if rec.FirstCall != nil {
		b = append(b, `,"first_call":`...)
		b = strconv.AppendBool(b, *rec.FirstCall)
	}
	b = appendStringField(b, "flow", rec.Flow, false)
	// ivr is present from the first prompt of a flow, empty if the
	// caller pressed nothing: that is known, not missing.
	if rec.IVR != nil {
		b = append(b, `,"ivr":[`...)
		for i, d := range rec.IVR {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, d)
		}
		b = append(b, ']')
	}
	b = appendStringField(b, "ivr_exit", rec.IVRExit, false)
	b = appendStringField(b, "queue", rec.Queue, false)
	b = appendStringField(b, "agent", rec.Agent, false)
	b = appendStringField(b, "outcome", rec.Outcome, false)
	b = appendStringField(b, "missed_reason", rec.MissedReason, false)
	b = appendStringField(b, "hangup_by", rec.HangupBy, false)
	b = appendTimeField(b, "started_at", rec.StartedAt)
	b = appendTimeField(b, "answered_at", rec.AnsweredAt)
	b = appendTimeField(b, "ended_at", rec.EndedAt)
	if d, ok := rec.Wait(); ok {
		b = appendIntField(b, "wait_ms", d.Milliseconds())
	}
	if d, ok := rec.Talk(); ok {
		b = appendIntField(b, "talk_ms", d.Milliseconds())
	}
	if d, ok := rec.Duration(); ok {
		b = appendIntField(b, "duration_ms", d.Milliseconds())
	}
	if rec.Consent != "" || rec.Recording != nil {
		b = append(b, `,"recording":{`...)
		first := true
		if rec.Consent != "" {
			b = appendStringField(b, "consent", rec.Consent, true)
			first = false
		}
		if r := rec.Recording; r != nil {
			b = appendStringField(b, "path", r.Path, first)
			// A deleted recording is known by its path alone.
			if r.SHA256 != "" {
				b = appendIntField(b, "duration_ms", r.Duration.Milliseconds())
				b = appendStringField(b, "sha256", r.SHA256, false)
			}
			if r.Partial {
				b = append(b, `,"partial":true`...)
			}
		}
		b = append(b, '}')
	}
	if v := rec.Voicemail; v != nil {
		b = append(b, `,"voicemail":{`...)
		b = appendStringField(b, "path", v.Path, true)
		if v.SHA256 != "" {
			b = appendIntField(b, "duration_ms", v.Duration.Milliseconds())
			b = appendStringField(b, "sha256", v.SHA256, false)
		}
		if v.Partial {
			b = append(b, `,"partial":true`...)
		}
		b = append(b, '}')
	}
	if len(rec.Attempts) > 0 {
		b = append(b, `,"attempts":[`...)
		for i := range rec.Attempts {
			a := &rec.Attempts[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			first := true
			if a.Agent != "" {
				b = appendStringField(b, "agent", a.Agent, first)
				first = false
			}
			if !a.StartedAt.IsZero() {
				if !first {
					b = append(b, ',')
				}
				b = append(b, `"started_at":"`...)
				b = a.StartedAt.UTC().AppendFormat(b, timeLayout)
				b = append(b, '"')
				first = false
			}
			// An attempt always has a ring time once it is in the record;
			// 0 is a real value (an agent unreachable at once).
			if !first {
				b = append(b, ',')
			}
			b = append(b, `"ring_ms":`...)
			b = strconv.AppendInt(b, a.Ring.Milliseconds(), 10)
			b = appendStringField(b, "result", a.Result, false)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	return b, nil
}

// estimateSize avoids regrowing the buffer: a final record's keys, times
// and numbers take about 470 bytes and each attempt about 100; the rest is
// the strings, plus a little room for escapes.
func estimateSize(event, id string, rec *call.Record) int {
	n := 512 + len(event) + len(id) + len(rec.ID) + len(rec.SIPCallID) + len(rec.Caller) + len(rec.CallerName) +
		len(rec.TrackingNumber) + len(rec.Source) + len(rec.Medium) + len(rec.Campaign) +
		len(rec.Keyword) + len(rec.Flow) + len(rec.Queue) + len(rec.Agent)
	n += 24 + 4*len(rec.IVR) + len(rec.Pool)
	if v := rec.Visitor; v != nil {
		n += 256 + len(v.Referrer) + len(v.LandingPage) + len(v.GCLID) + len(v.FBCLID) + len(v.MSCLKID) + len(v.UTMCampaign)
		for k, val := range v.ClickIDs {
			n += 8 + len(k) + len(val)
		}
	}
	if rec.Recording != nil {
		n += 160 + len(rec.Recording.Path)
	}
	if rec.Voicemail != nil {
		n += 160 + len(rec.Voicemail.Path)
	}
	for i := range rec.Attempts {
		n += 104 + len(rec.Attempts[i].Agent)
	}
	return n
}

// appendStringField writes `,"key":"value"`, or nothing for an empty value
// unless first (the event name, which is always there).
func appendStringField(b []byte, key, value string, first bool) []byte {
	if value == "" && !first {
		return b
	}
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `":`...)
	return appendString(b, value)
}

func appendTimeField(b []byte, key string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":"`...)
	b = t.UTC().AppendFormat(b, timeLayout)
	return append(b, '"')
}

func appendIntField(b []byte, key string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendInt(b, v, 10)
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as a JSON string. Values come from SIP headers
// (display names in particular), so control characters and invalid UTF-8
// are possible; invalid bytes become U+FFFD as encoding/json does, so the
// output is always valid JSON.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript consumers
		// that eval or embed the payload; encoding/json escapes them too.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
