package sip

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestMalformedLogOncePerSourcePerMinute(t *testing.T) {
	now := time.Unix(1000, 0)
	m := newMalformedLog(func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")

	if log, n := m.note(a); !log || n != 0 {
		t.Fatalf("first from a: log %v, %d suppressed; want logged", log, n)
	}
	for range 5 {
		now = now.Add(time.Second)
		if log, _ := m.note(a); log {
			t.Fatal("a logged again within its minute")
		}
	}
	if log, _ := m.note(b); !log {
		t.Fatal("b held back by a's minute")
	}
	now = now.Add(time.Minute)
	if log, n := m.note(a); !log || n != 5 {
		t.Fatalf("a after its minute: log %v, %d suppressed; want logged with 5", log, n)
	}
	if log, _ := m.note(a); log {
		t.Fatal("a logged twice in its new minute")
	}
}

func TestMalformedLogBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	m := newMalformedLog(func() time.Time { return now })
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range malformedSources {
		m.note(addr(i))
	}
	// A flood from new sources within the minute shares one entry: one
	// line, then silence.
	logged := 0
	for i := range 1000 {
		if log, _ := m.note(addr(malformedSources + i)); log {
			logged++
		}
	}
	if logged != 1 || len(m.sources) != malformedSources+1 {
		t.Fatalf("flood of new sources: %d lines, %d sources; want 1 line, %d sources", logged, len(m.sources), malformedSources+1)
	}
	// Once their minute is over the old sources make room.
	now = now.Add(time.Minute)
	if log, _ := m.note(addr(1 << 20)); !log {
		t.Fatal("a new source after the minute was not logged")
	}
	if len(m.sources) > malformedSources+1 {
		t.Fatalf("%d sources remembered, bound %d", len(m.sources), malformedSources+1)
	}
}

func TestLogMalformedLine(t *testing.T) {
	now := time.Unix(1000, 0)
	var buf bytes.Buffer
	e := &Edge{log: zerolog.New(&buf), malformed: newMalformedLog(func() time.Time { return now })}
	for range 4 {
		e.logMalformed("192.0.2.7:5060", "Malformed Request-Line")
	}
	now = now.Add(61 * time.Second)
	e.logMalformed("192.0.2.7:5061", "Missing Via")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	want := fmt.Sprintf("3 more malformed messages from %s since the last line", "192.0.2.7")
	if !strings.Contains(lines[1], want) || !strings.Contains(lines[1], `"suppressed":3`) {
		t.Fatalf("second line lacks the count:\n%s", lines[1])
	}
}
