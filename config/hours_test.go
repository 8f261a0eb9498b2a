package config

import (
	"testing"
	"time"
)

func mustHours(t *testing.T, s string, closed ...string) *Hours {
	t.Helper()
	h, err := ParseHours(s)
	if err != nil {
		t.Fatalf("ParseHours(%q): %v", s, err)
	}
	if len(closed) > 0 {
		if h, err = h.WithClosed(closed); err != nil {
			t.Fatalf("WithClosed(%q): %v", closed, err)
		}
	}
	return h
}

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseHours(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Mon-Fri 09:00-18:00 Europe/Madrid", "Mon-Fri 09:00-18:00 Europe/Madrid"},
		{"Mon-Fri 09:00-13:00, 14:00-18:00; Sat 10:00-14:00 America/New_York", "Mon-Fri 09:00-13:00, 14:00-18:00; Sat 10:00-14:00 America/New_York"},
		{"24/7", "24/7 UTC"},
		{"  24/7   Europe/Madrid ", "24/7 Europe/Madrid"},
		{"Mon-Sun 00:00-24:00 UTC", "24/7 UTC"},
		{"Mon-Fri 00:00-24:00; Sat,Sun 00:00-24:00 Europe/Madrid", "24/7 Europe/Madrid"},
		{"mon, wed ,FRI 9:00-12:00 Europe/London", "Mon,Wed,Fri 09:00-12:00 Europe/London"},
		{"Monday-Friday 08:30-17:00 Asia/Tokyo", "Mon-Fri 08:30-17:00 Asia/Tokyo"},
		{"Tues,Thurs 10:00 - 11:00 UTC", "Tue,Thu 10:00-11:00 UTC"},
		{"Sat 14:00-18:00,10:00-14:00 UTC", "Sat 10:00-14:00, 14:00-18:00 UTC"},
		{"Mon-Fri 09:00-18:00; Sat 09:00-18:00 UTC", "Mon-Sat 09:00-18:00 UTC"},
		{"Sat,Sun 10:00-14:00;Mon-Fri 09:00-18:00 UTC", "Mon-Fri 09:00-18:00; Sat,Sun 10:00-14:00 UTC"},
		{"Fri-Mon 22:00-02:00 Europe/Berlin", "Mon,Fri-Sun 22:00-02:00 Europe/Berlin"},
		{"Mon 22:00-00:00 UTC", "Mon 22:00-24:00 UTC"},
		{"Sun 23:00-01:00; Mon 01:00-05:00 UTC", "Mon 01:00-05:00; Sun 23:00-01:00 UTC"},
		{"Mon–Fri 09:00–18:00 Europe/Madrid", "Mon-Fri 09:00-18:00 Europe/Madrid"},
		{"Mon-Fri 09:00-18:00 Etc/GMT+5", "Mon-Fri 09:00-18:00 Etc/GMT+5"},
	} {
		h, err := ParseHours(tc.in)
		if err != nil {
			t.Errorf("ParseHours(%q): %v", tc.in, err)
			continue
		}
		if got := h.String(); got != tc.want {
			t.Errorf("ParseHours(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		// The normalised form is itself valid, and normal.
		again, err := ParseHours(h.String())
		if err != nil || again.String() != h.String() {
			t.Errorf("ParseHours(%q) = %v, %v: the normalised form does not read back", h.String(), again, err)
		}
	}
}

func TestParseHoursErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `no hours given: write them like "Mon-Fri 09:00-18:00 Europe/Madrid", or "24/7"`},
		{"  ", `no hours given: write them like "Mon-Fri 09:00-18:00 Europe/Madrid", or "24/7"`},
		{"Mon-Fri 09:00-18:00", `"Mon-Fri 09:00-18:00" has no time zone at the end: add the IANA name of the zone the hours are in, like "Mon-Fri 09:00-18:00 Europe/Madrid"`},
		{"Mon-Fri", `"Mon-Fri" has no time zone at the end: add the IANA name of the zone the hours are in, like "Mon-Fri 09:00-18:00 Europe/Madrid"`},
		{"Mon-Fri 09:00-18:00 Europe/Madird", `unknown time zone "Europe/Madird": use an IANA time zone name, like Europe/Madrid, America/New_York or UTC`},
		{"Mon-Fri 09:00-18:00 Madrid", `unknown time zone "Madrid": use an IANA time zone name, like Europe/Madrid, America/New_York or UTC`},
		{"Mon-Fri 09:00-18:00 Local", `time zone "Local" is whatever the machine is set to: use an IANA time zone name, like Europe/Madrid, America/New_York or UTC`},
		{"24/7 Mars/Olympus", `unknown time zone "Mars/Olympus": use an IANA time zone name, like Europe/Madrid, America/New_York or UTC`},
		{"Europe/Madrid", `"Europe/Madrid" has only a time zone: put the days and times before it; write them like "Mon-Fri 09:00-18:00 Europe/Madrid", or "24/7"`},
		{"24/7 Europe/Madrid closed", `"24/7 Europe/Madrid closed": "24/7" stands alone, or is followed only by a time zone, like "24/7 Europe/Madrid"`},
		{"Mon-Fri 09:00-18:00; 24/7 UTC", `"Mon-Fri 09:00-18:00; 24/7 UTC": "24/7" stands alone, or is followed only by a time zone, like "24/7 Europe/Madrid"; it does not mix with days and times`},
		{"Mon-Fri 09:00-18:00;; Sat 10:00-14:00 UTC", `"Mon-Fri 09:00-18:00;; Sat 10:00-14:00" has an empty day group: separate day groups with a single ";", like "Mon-Fri 09:00-18:00; Sat 10:00-14:00 Europe/Madrid"`},
		{"Mon-Fri 09:00-18:00; UTC", `"Mon-Fri 09:00-18:00;" has an empty day group: separate day groups with a single ";", like "Mon-Fri 09:00-18:00; Sat 10:00-14:00 Europe/Madrid"`},
		{"Mon-Fri 09:00-18:00; Sat UTC", `day group "Sat" has no times: write its time ranges after the days, like "Sat 10:00-14:00"`},
		{"09:00-18:00 UTC", `day group "09:00-18:00" has no days: write the days before the times, like "Mon-Fri 09:00-18:00"`},
		{"Mnd-Fri 09:00-18:00 UTC", `"Mnd" is not a day: days are Mon, Tue, Wed, Thu, Fri, Sat or Sun, alone (Sat), as a range (Mon-Fri) or in a list (Mon,Wed,Fri)`},
		{"Mon-Fr 09:00-18:00 UTC", `"Fr" is not a day: days are Mon, Tue, Wed, Thu, Fri, Sat or Sun, alone (Sat), as a range (Mon-Fri) or in a list (Mon,Wed,Fri)`},
		{"Mon Fri 09:00-18:00 UTC", `"Mon Fri" is not a day: days are Mon, Tue, Wed, Thu, Fri, Sat or Sun, alone (Sat), as a range (Mon-Fri) or in a list (Mon,Wed,Fri)`},
		{"Weekdays 09:00-18:00 UTC", `"Weekdays" is not a day: days are Mon, Tue, Wed, Thu, Fri, Sat or Sun, alone (Sat), as a range (Mon-Fri) or in a list (Mon,Wed,Fri)`},
		{"Mon- 09:00-18:00 UTC", `"Mon-" is not a day range: write it like Mon-Fri`},
		{"Mon-Wed-Fri 09:00-18:00 UTC", `"Mon-Wed-Fri" is not a day range: write it like Mon-Fri`},
		{"Mon,,Fri 09:00-18:00 UTC", `"Mon,,Fri" has an empty day: days are Mon, Tue, Wed, Thu, Fri, Sat or Sun, alone (Sat), as a range (Mon-Fri) or in a list (Mon,Wed,Fri)`},
		{"Mon-Fri,Wed 09:00-18:00 UTC", `Wed is listed twice in "Mon-Fri,Wed": list each day once`},
		{"Mon-Fri 09:00-18:00; Fri 09:00-14:00 UTC", `Fri is given hours twice, in "Mon-Fri" and in "Fri": give each day its hours once`},
		{"Mon-Fri 9-18 UTC", `"9" in "9-18" is not a time: write HH:MM, hours 00 to 23 (24:00 only as an end), minutes 00 to 59`},
		{"Mon-Fri 9am-6pm UTC", `"9am" in "9am-6pm" is not a time: write HH:MM, hours 00 to 23 (24:00 only as an end), minutes 00 to 59`},
		{"Mon-Fri 09:00 UTC", `"09:00" is not a time range: write time ranges as HH:MM-HH:MM, like 09:00-18:00, separated by ","`},
		{"Mon-Fri 09:00-18:00 Sat 10:00-14:00 UTC", `"09:00-18:00 Sat 10:00-14:00" is not a time range: write time ranges as HH:MM-HH:MM, like 09:00-18:00, separated by ",", and separate day groups with ";", like "Mon-Fri 09:00-18:00; Sat 10:00-14:00"`},
		{"Mon-Fri 09:00-13:00,,14:00-18:00 UTC", `"09:00-13:00,,14:00-18:00" has an empty time range: write time ranges as HH:MM-HH:MM, like 09:00-18:00, separated by ","`},
		{"Mon-Fri 09:00-25:00 UTC", `"25:00" in "09:00-25:00" is not a time: write HH:MM, hours 00 to 23 (24:00 only as an end), minutes 00 to 59`},
		{"Mon-Fri 09:60-18:00 UTC", `"09:60" in "09:60-18:00" is not a time: write HH:MM, hours 00 to 23 (24:00 only as an end), minutes 00 to 59`},
		{"Mon-Fri 09:00-24:30 UTC", `"24:30" in "09:00-24:30" is not a time: write HH:MM, hours 00 to 23 (24:00 only as an end), minutes 00 to 59`},
		{"Mon-Fri 9:0-18:00 UTC", `"9:0" in "9:0-18:00" is not a time: write HH:MM, hours 00 to 23 (24:00 only as an end), minutes 00 to 59`},
		{"Mon-Fri 24:00-02:00 UTC", `"24:00-02:00" starts at 24:00: start it at 00:00 of the next day`},
		{"Mon-Fri 09:00-09:00 UTC", `"09:00-09:00" is empty: a range ends after it starts; 00:00-24:00 is the whole day, and one like 22:00-02:00 crosses midnight`},
		{"Mon-Fri 09:00-13:00, 12:00-18:00 UTC", `Mon 09:00-13:00 overlaps Mon 12:00-18:00: each moment may be in one time range only`},
		{"Mon 22:00-02:00; Tue 01:00-05:00 UTC", `Mon 22:00-02:00 overlaps Tue 01:00-05:00: each moment may be in one time range only`},
		{"Sun 22:00-02:00; Mon 01:00-05:00 UTC", `Sun 22:00-02:00 overlaps Mon 01:00-05:00: each moment may be in one time range only`},
	} {
		h, err := ParseHours(tc.in)
		if err == nil {
			t.Errorf("ParseHours(%q) = %v, want error %q", tc.in, h, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseHours(%q):\n got %s\nwant %s", tc.in, err, tc.want)
		}
	}
}

// TestReferenceHours: the reference configuration's hours parse.
func TestReferenceHours(t *testing.T) {
	const ref = "Mon-Fri 09:00-18:00 Europe/Madrid"
	if h := mustHours(t, ref); h.String() != ref {
		t.Errorf("String() = %q, want %q", h.String(), ref)
	}
}

type openCase struct {
	at   time.Time
	want bool
}

func checkOpen(t *testing.T, h *Hours, cases []openCase) {
	t.Helper()
	for _, c := range cases {
		if got := h.Open(c.at); got != c.want {
			t.Errorf("%s: Open(%s) = %v, want %v", h, c.at.Format(time.RFC3339), got, c.want)
		}
	}
}

func TestOpenBoundaries(t *testing.T) {
	madrid, ny := zone(t, "Europe/Madrid"), zone(t, "America/New_York")
	h := mustHours(t, "Mon-Fri 09:00-18:00 Europe/Madrid")
	at := func(day, hh, mm, ss int) time.Time { return time.Date(2026, 6, day, hh, mm, ss, 0, madrid) } // June 15th is a Monday
	checkOpen(t, h, []openCase{
		{at(15, 8, 59, 59), false},
		{at(15, 9, 0, 0), true},
		{at(15, 12, 0, 0), true},
		{at(15, 17, 59, 59), true},
		{at(15, 18, 0, 0), false},
		{at(19, 17, 59, 59), true}, // Friday
		{at(20, 12, 0, 0), false},  // Saturday
		{at(21, 12, 0, 0), false},  // Sunday
		// The same moments, given in other zones: 09:00 in Madrid in
		// summer is 07:00 UTC and 03:00 in New York.
		{time.Date(2026, 6, 15, 7, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 6, 15, 6, 59, 59, 0, time.UTC), false},
		{time.Date(2026, 6, 15, 3, 0, 0, 0, ny), true},
		{time.Date(2026, 6, 15, 11, 59, 59, 0, ny), true},
		{time.Date(2026, 6, 15, 12, 0, 0, 0, ny), false},
		// Friday 23:00 in New York is Saturday in Madrid.
		{time.Date(2026, 6, 19, 23, 0, 0, 0, ny), false},
	})

	always := mustHours(t, "24/7")
	checkOpen(t, always, []openCase{{at(15, 0, 0, 0), true}, {at(20, 23, 59, 59), true}})
	whole := mustHours(t, "Mon 00:00-24:00 Europe/Madrid")
	checkOpen(t, whole, []openCase{
		{at(14, 23, 59, 59), false},
		{at(15, 0, 0, 0), true},
		{at(15, 23, 59, 59), true},
		{at(16, 0, 0, 0), false},
	})
	split := mustHours(t, "Mon 09:00-13:00, 14:00-18:00 Europe/Madrid")
	checkOpen(t, split, []openCase{
		{at(15, 12, 59, 59), true},
		{at(15, 13, 0, 0), false},
		{at(15, 13, 59, 59), false},
		{at(15, 14, 0, 0), true},
	})
}

// TestOpenDST: the hours follow Madrid's wall clock through the changes of
// 2026: forward at 02:00 CET on March 29th, back at 03:00 CEST on October
// 25th (both the last Sunday of the month).
func TestOpenDST(t *testing.T) {
	utc := func(mo time.Month, d, hh, mm int) time.Time { return time.Date(2026, mo, d, hh, mm, 0, 0, time.UTC) }
	office := mustHours(t, "Mon-Fri 09:00-18:00 Europe/Madrid")
	checkOpen(t, office, []openCase{
		// The Monday before, in winter time, 09:00 is 08:00 UTC.
		{utc(time.March, 23, 7, 59), false},
		{utc(time.March, 23, 8, 0), true},
		{utc(time.March, 23, 16, 59), true},
		{utc(time.March, 23, 17, 0), false},
		// The Monday after, in summer time, 07:00 UTC.
		{utc(time.March, 30, 6, 59), false},
		{utc(time.March, 30, 7, 0), true},
		{utc(time.March, 30, 15, 59), true},
		{utc(time.March, 30, 16, 0), false},
		// And back in winter time after October 25th.
		{utc(time.October, 23, 7, 0), true}, // Friday before: summer time
		{utc(time.October, 26, 7, 0), false},
		{utc(time.October, 26, 8, 0), true},
		{utc(time.October, 26, 17, 0), false},
	})

	// Sunday 01:00-04:00 spans the change itself.
	night := mustHours(t, "Sun 01:00-04:00 Europe/Madrid")
	checkOpen(t, night, []openCase{
		{utc(time.March, 28, 23, 59), false}, // 00:59 CET
		{utc(time.March, 29, 0, 0), true},    // 01:00 CET
		{utc(time.March, 29, 0, 59), true},   // 01:59 CET
		{utc(time.March, 29, 1, 0), true},    // 03:00 CEST: 02:00-03:00 never happened
		{utc(time.March, 29, 1, 59), true},   // 03:59 CEST
		{utc(time.March, 29, 2, 0), false},   // 04:00 CEST
		{utc(time.October, 24, 22, 59), false},
		{utc(time.October, 24, 23, 0), true}, // 01:00 CEST
		{utc(time.October, 25, 0, 59), true}, // 02:59 CEST
		{utc(time.October, 25, 1, 0), true},  // 02:00 CET, the second time
		{utc(time.October, 25, 2, 59), true}, // 03:59 CET
		{utc(time.October, 25, 3, 0), false}, // 04:00 CET
	})
	// By the wall clock it is open three hours; in real time two in
	// March and four in October.
	openFor := func(from time.Time) time.Duration {
		var d time.Duration
		for u := from; u.Before(from.Add(24 * time.Hour)); u = u.Add(time.Minute) {
			if night.Open(u) {
				d += time.Minute
			}
		}
		return d
	}
	if d := openFor(utc(time.March, 28, 12, 0)); d != 2*time.Hour {
		t.Errorf("open %v on March 29th, want 2h", d)
	}
	if d := openFor(utc(time.October, 24, 12, 0)); d != 4*time.Hour {
		t.Errorf("open %v on October 25th, want 4h", d)
	}
}

func TestOpenAcrossMidnight(t *testing.T) {
	madrid := zone(t, "Europe/Madrid")
	at := func(day, hh, mm, ss int) time.Time { return time.Date(2026, 6, day, hh, mm, ss, 0, madrid) }
	// June 19th is a Friday.
	h := mustHours(t, "Fri 22:00-02:00; Sun 23:00-01:00 Europe/Madrid")
	checkOpen(t, h, []openCase{
		{at(19, 1, 0, 0), false}, // Friday morning: Thursday has no night range
		{at(19, 21, 59, 59), false},
		{at(19, 22, 0, 0), true},
		{at(19, 23, 59, 59), true},
		{at(20, 0, 0, 0), true},
		{at(20, 1, 59, 59), true},
		{at(20, 2, 0, 0), false},
		{at(20, 22, 30, 0), false}, // Saturday night: not Friday's
		{at(21, 23, 0, 0), true},   // Sunday into Monday: across the week's end too
		{at(22, 0, 59, 59), true},
		{at(22, 1, 0, 0), false},
	})
}

func TestClosedDates(t *testing.T) {
	madrid := zone(t, "Europe/Madrid")
	at := func(mo time.Month, day, hh, mm int) time.Time { return time.Date(2026, mo, day, hh, mm, 0, 0, madrid) }

	office := mustHours(t, "Mon-Fri 09:00-18:00 Europe/Madrid")
	xmas := mustHours(t, "Mon-Fri 09:00-18:00 Europe/Madrid", "2026-12-25", "2027-01-01", "2026-12-25")
	checkOpen(t, xmas, []openCase{
		{at(time.December, 24, 10, 0), true},
		{at(time.December, 25, 10, 0), false},
		{at(time.December, 28, 10, 0), true},
	})
	if !office.Open(at(time.December, 25, 10, 0)) {
		t.Errorf("WithClosed changed the Hours it was called on")
	}
	if got, want := xmas.String(), "Mon-Fri 09:00-18:00 Europe/Madrid (closed 2026-12-25, 2027-01-01)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	more, err := xmas.WithClosed([]string{"2026-12-24"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := more.String(), "Mon-Fri 09:00-18:00 Europe/Madrid (closed 2026-12-24, 2026-12-25, 2027-01-01)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}

	// The whole day in Madrid, not in UTC.
	always := mustHours(t, "24/7 Europe/Madrid", "2026-12-25")
	checkOpen(t, always, []openCase{
		{time.Date(2026, 12, 24, 22, 59, 59, 0, time.UTC), true},
		{time.Date(2026, 12, 24, 23, 0, 0, 0, time.UTC), false}, // 00:00 in Madrid
		{time.Date(2026, 12, 25, 22, 59, 59, 0, time.UTC), false},
		{time.Date(2026, 12, 25, 23, 0, 0, 0, time.UTC), true},
	})
	// Without a zone, 24/7's days are UTC's.
	utcDays := mustHours(t, "24/7", "2026-12-25")
	checkOpen(t, utcDays, []openCase{
		{time.Date(2026, 12, 24, 23, 59, 59, 0, time.UTC), true},
		{time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC), false},
	})

	// A night range into a closed day stops at midnight; one starting on
	// a closed day does not open, after midnight either. December 24th
	// is a Thursday.
	nights := mustHours(t, "Thu-Fri 22:00-02:00 Europe/Madrid")
	closedFri := mustHours(t, "Thu-Fri 22:00-02:00 Europe/Madrid", "2026-12-25")
	checkOpen(t, nights, []openCase{
		{at(time.December, 25, 1, 0), true},
		{at(time.December, 25, 23, 0), true},
		{at(time.December, 26, 1, 0), true},
	})
	checkOpen(t, closedFri, []openCase{
		{at(time.December, 24, 23, 59), true},
		{at(time.December, 25, 0, 0), false},
		{at(time.December, 25, 1, 0), false},
		{at(time.December, 25, 23, 0), false},
		{at(time.December, 26, 1, 0), false},
		{at(time.December, 31, 23, 0), true}, // the next Thursday
		{time.Date(2027, 1, 1, 1, 0, 0, 0, madrid), true},
	})

	for _, tc := range []struct{ in, want string }{
		{"2026-13-01", `closed date "2026-13-01" is not a date: write closed dates as YYYY-MM-DD, like 2026-12-25`},
		{"2026-02-30", `closed date "2026-02-30" is not a date: write closed dates as YYYY-MM-DD, like 2026-12-25`},
		{"25/12/2026", `closed date "25/12/2026" is not a date: write closed dates as YYYY-MM-DD, like 2026-12-25`},
		{"2026-12-5", `closed date "2026-12-5" is not a date: write closed dates as YYYY-MM-DD, like 2026-12-25`},
		{"", `closed date "" is not a date: write closed dates as YYYY-MM-DD, like 2026-12-25`},
	} {
		h, err := office.WithClosed([]string{"2026-12-25", tc.in})
		if err == nil || err.Error() != tc.want {
			t.Errorf("WithClosed(%q) = %v, %v; want error %q", tc.in, h, err, tc.want)
		}
	}
}

func TestNextOpen(t *testing.T) {
	madrid := zone(t, "Europe/Madrid")
	at := func(mo time.Month, day, hh, mm int) time.Time { return time.Date(2026, mo, day, hh, mm, 0, 0, madrid) }
	utc := func(mo time.Month, d, hh, mm int) time.Time { return time.Date(2026, mo, d, hh, mm, 0, 0, time.UTC) }
	office := mustHours(t, "Mon-Fri 09:00-13:00, 14:00-18:00 Europe/Madrid", "2026-12-25", "2027-01-01")
	oneMonday := mustHours(t, "Mon 09:00-10:00 Europe/Madrid", "2026-06-22", "2026-06-29")
	twoWeeks := mustHours(t, "Mon 09:00-10:00 Europe/Madrid", "2026-06-15", "2026-06-22")
	dstGap := mustHours(t, "Sun 02:30-05:00 Europe/Madrid")
	dstTwice := mustHours(t, "Sun 02:00-02:30 Europe/Madrid")
	for _, tc := range []struct {
		name string
		h    *Hours
		from time.Time
		want time.Time // zero: none
	}{
		{"open now", office, at(time.June, 15, 10, 0), at(time.June, 15, 10, 0)},
		{"at the opening", office, at(time.June, 15, 9, 0), at(time.June, 15, 9, 0)},
		{"before opening", office, at(time.June, 15, 7, 12), at(time.June, 15, 9, 0)},
		{"lunch", office, at(time.June, 15, 13, 0), at(time.June, 15, 14, 0)},
		{"evening", office, at(time.June, 15, 18, 0), at(time.June, 16, 9, 0)},
		{"weekend", office, at(time.June, 19, 18, 0), at(time.June, 22, 9, 0)},
		{"given in UTC", office, utc(time.June, 19, 16, 0), at(time.June, 22, 9, 0)},
		{"over a closed day", office, at(time.December, 24, 18, 0), at(time.December, 28, 9, 0)},
		{"on a closed day", office, time.Date(2027, 1, 1, 10, 0, 0, 0, madrid), time.Date(2027, 1, 4, 9, 0, 0, 0, madrid)},
		{"two closed Mondays", oneMonday, at(time.June, 15, 10, 0), time.Time{}},
		{"14 days ahead", twoWeeks, at(time.June, 15, 9, 0), at(time.June, 29, 9, 0)},
		{"a second more", twoWeeks, at(time.June, 15, 9, 0).Add(-time.Second), time.Time{}},
		{"24/7 closed for long", mustHours(t, "24/7", "2026-06-15", "2026-06-16", "2026-06-17", "2026-06-18", "2026-06-19", "2026-06-20", "2026-06-21",
			"2026-06-22", "2026-06-23", "2026-06-24", "2026-06-25", "2026-06-26", "2026-06-27", "2026-06-28", "2026-06-29"), utc(time.June, 15, 0, 0), time.Time{}},
		{"24/7 after a closed day", mustHours(t, "24/7 Europe/Madrid", "2026-12-25"), at(time.December, 25, 12, 0), at(time.December, 26, 0, 0)},
		// 02:30 does not happen on March 29th: it opens when the clock
		// jumps from 02:00 to 03:00.
		{"clocks forward", dstGap, utc(time.March, 28, 12, 0), utc(time.March, 29, 1, 0)},
		// 02:30 happens twice on October 25th: it opens the first time.
		{"clocks back", dstGap, utc(time.October, 24, 12, 0), utc(time.October, 25, 0, 30)},
		// 02:00-02:30 is open twice that night; after the first, it opens
		// again when the clock goes back to 02:00.
		{"clocks back, first", dstTwice, utc(time.October, 24, 12, 0), utc(time.October, 25, 0, 0)},
		{"clocks back, again", dstTwice, utc(time.October, 25, 0, 30), utc(time.October, 25, 1, 0)},
		{"clocks back, done", dstTwice, utc(time.October, 25, 1, 30), utc(time.November, 1, 1, 0)},
	} {
		got, ok := tc.h.NextOpen(tc.from)
		switch {
		case tc.want.IsZero() && ok:
			t.Errorf("%s: NextOpen(%s) = %s, want none within 14 days", tc.name, tc.from, got)
		case !tc.want.IsZero() && (!ok || !got.Equal(tc.want)):
			t.Errorf("%s: NextOpen(%s) = %s, %v; want %s", tc.name, tc.from, got, ok, tc.want)
		case ok && got.Location() != tc.h.loc:
			t.Errorf("%s: NextOpen(%s) = %s: not in the hours' zone", tc.name, tc.from, got)
		}
	}
}
