package media

import (
	"errors"
	"testing"
)

func TestParseDTMFInfo(t *testing.T) {
	relay := "application/dtmf-relay"
	cases := []struct {
		ct, body string
		want     byte
	}{
		{relay, "Signal=5\r\nDuration=160\r\n", '5'},
		{relay, "Signal=5\nDuration=160\n", '5'},
		{relay, "Signal= #\r\nDuration= 250", '#'},
		{relay, "signal=*", '*'},
		{relay, "SIGNAL = 0", '0'},
		{relay, "Duration=160\r\nSignal=9", '9'},
		{relay, "\r\nSignal=1\r\n\r\n", '1'},
		{relay, "Signal=10\r\nDuration=100", '*'},
		{relay, "Signal=11", '#'},
		{relay, "Signal=12", 'A'},
		{relay, "Signal=15", 'D'},
		{relay, "Signal=d", 'D'},
		{relay, "Signal=B", 'B'},
		{"Application/DTMF-Relay", "Signal=3", '3'},
		{"application/dtmf-relay; charset=utf-8", "Signal=4", '4'},
		{"application/dtmf", "5", '5'},
		{"application/dtmf", "#\r\n", '#'},
		{"application/dtmf", " 11 ", '#'},
		{"APPLICATION/DTMF", "*", '*'},
	}
	for _, tc := range cases {
		got, err := ParseDTMFInfo(tc.ct, []byte(tc.body))
		if err != nil || got != tc.want {
			t.Errorf("%s %q: got %q, %v; want %q", tc.ct, tc.body, got, err, tc.want)
		}
	}
}

func TestParseDTMFInfoErrors(t *testing.T) {
	relay := "application/dtmf-relay"
	cases := []struct {
		ct, body string
		want     error
	}{
		{"text/plain", "Signal=5", ErrDTMFContentType},
		{"", "5", ErrDTMFContentType},
		{"application/dtmf-relayx", "Signal=5", ErrDTMFContentType},
		{"application/sdp", "v=0", ErrDTMFContentType},
		{relay, "", ErrDTMFBody},
		{relay, "Duration=160", ErrDTMFBody},
		{relay, "Signal=", ErrDTMFBody},
		{relay, "Signal=55", ErrDTMFBody},
		{relay, "Signal=16", ErrDTMFBody},
		{relay, "Signal=!", ErrDTMFBody},
		{relay, "Signal=E", ErrDTMFBody},
		{relay, "Signal=-1", ErrDTMFBody},
		{relay, "Signal=5\r\nSignal=6", ErrDTMFBody},
		{relay, "Signal 5", ErrDTMFBody},
		{"application/dtmf", "", ErrDTMFBody},
		{"application/dtmf", "Signal=5", ErrDTMFBody},
		{"application/dtmf", "12a", ErrDTMFBody},
	}
	for _, tc := range cases {
		got, err := ParseDTMFInfo(tc.ct, []byte(tc.body))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s %q: got %q, %v; want %v", tc.ct, tc.body, got, err, tc.want)
		}
	}
}
