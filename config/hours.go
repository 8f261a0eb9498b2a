package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	// Embedded so that every zone an operator can name is known even on
	// a machine or container without /usr/share/zoneinfo: otherwise a
	// configuration valid on one host would be refused on another.
	_ "time/tzdata"
)

// Hours are when a queue answers: opening ranges on days of the week, in
// a time zone, less the dates it is closed. An Hours is immutable: the
// configuration that holds it may be read by every call at once.
//
// The form ParseHours reads, from the most common to the most complete:
//
//	Mon-Fri 09:00-18:00 Europe/Madrid
//	Mon-Fri 09:00-13:00, 14:00-18:00; Sat 10:00-14:00 America/New_York
//	Mon,Wed,Fri 08:00-12:00; Tue,Thu 14:00-20:00 Europe/London
//	Fri-Sat 22:00-02:00 Europe/Berlin
//	Mon-Sun 00:00-24:00 UTC
//	24/7
//	24/7 Europe/Madrid
//
// That is: one or more day groups separated by ";", then the IANA name of
// the time zone. A day group is its days, then its time ranges:
//
//   - days are Mon, Tue, Wed, Thu, Fri, Sat, Sun (any case; a full name
//     like Monday, or a longer abbreviation like Tues or Thurs, also
//     does); a range of them, Mon-Fri, which may wrap around the week
//     (Fri-Mon is Fri, Sat, Sun, Mon); or a list of either, Mon,Wed,Fri-Sun.
//   - time ranges are HH:MM-HH:MM (H:MM also does), separated by ",".
//     A range includes its start and excludes its end: 09:00-18:00 is
//     open at 09:00 and 17:59:59, closed at 18:00. 24:00 is allowed as an
//     end, and 00:00-24:00 is the whole day. A range whose end is before
//     its start crosses midnight and belongs to the day it starts on:
//     "Fri 22:00-02:00" is Friday 22:00 to Saturday 02:00.
//
// A day may be in one group only, and ranges may not overlap, also across
// midnight: both are most likely typos, and no reading of them is
// obviously the one the operator meant. Days in no group are closed.
//
// "24/7" is always open; it may be followed by a zone, which says whose
// days the closed dates are (UTC if none is given). Anywhere else the
// zone is required, because a queue's hours are where its people are, not
// where the edge runs.
//
// Times are wall-clock times in the zone, which is what an office's hours
// are: on the day the clocks go forward, "Sun 01:00-04:00" is open for two
// hours; on the day they go back, for four.
//
// A closed date (WithClosed) is a whole day in the zone, from its 00:00 to
// the next day's 00:00, and it wins over the ranges. It also cancels the
// ranges that start on it, including the part after midnight, since such a
// range belongs to the closed day; and it cuts off at its midnight a range
// that started the day before. So with "Fri 22:00-02:00", a closed
// Saturday closes at Saturday 00:00, and a closed Friday does not open at
// all.
type Hours struct {
	loc    *time.Location
	always bool // every day 00:00-24:00: written "24/7"
	// week is each day's ranges, Monday first, sorted by start.
	week [7][]span
	// closed are the closed dates as day numbers (civil), sorted.
	closed []int
}

// span is an opening range in minutes from midnight of the day it starts
// on; a to past minutesPerDay runs into the next day.
type span struct{ from, to int }

const (
	minutesPerDay = 24 * 60
	// lookAhead bounds NextOpen: far enough for any holiday season,
	// near enough that an announcement of it still makes sense.
	lookAhead = 14 * 24 * time.Hour

	hoursForm  = `write them like "Mon-Fri 09:00-18:00 Europe/Madrid", or "24/7"`
	dayForm    = `days are Mon, Tue, Wed, Thu, Fri, Sat or Sun, alone (Sat), as a range (Mon-Fri) or in a list (Mon,Wed,Fri)`
	rangeForm  = `write time ranges as HH:MM-HH:MM, like 09:00-18:00, separated by ","`
	zoneForm   = `use an IANA time zone name, like Europe/Madrid, America/New_York or UTC`
	closedForm = `write closed dates as YYYY-MM-DD, like 2026-12-25`
)

// dayName is the English name of day d, Monday being 0.
func dayName(d int) string { return time.Weekday((d + 1) % 7).String() }

// dayAbbr is its three-letter abbreviation, the normalised form.
func dayAbbr(d int) string { return dayName(d)[:3] }

// ParseHours reads a queue's hours in the form described at Hours. Its
// errors say what is wrong and how it should be written, and name no
// queue or file: the caller knows where the string came from.
func ParseHours(s string) (*Hours, error) {
	// Documents and spreadsheets turn "-" into an en dash, and operators
	// paste from them.
	s = strings.TrimSpace(strings.ReplaceAll(s, "–", "-"))
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("no hours given: " + hoursForm)
	}
	if fields[0] == "24/7" {
		h := &Hours{loc: time.UTC, always: true}
		switch len(fields) {
		case 1:
		case 2:
			loc, err := loadZone(fields[1])
			if err != nil {
				return nil, err
			}
			h.loc = loc
		default:
			return nil, fmt.Errorf(`%q: "24/7" stands alone, or is followed only by a time zone, like "24/7 Europe/Madrid"`, s)
		}
		for d := range h.week {
			h.week[d] = []span{{0, minutesPerDay}}
		}
		return h, nil
	}
	if strings.Contains(s, "24/7") {
		return nil, fmt.Errorf(`%q: "24/7" stands alone, or is followed only by a time zone, like "24/7 Europe/Madrid"; it does not mix with days and times`, s)
	}

	zone := fields[len(fields)-1]
	// No zone name has a ':' or is a day, but a schedule whose zone was
	// forgotten ends with one of them.
	if _, err := parseDays(zone); err == nil || strings.Contains(zone, ":") {
		return nil, fmt.Errorf(`%q has no time zone at the end: add the IANA name of the zone the hours are in, like "Mon-Fri 09:00-18:00 Europe/Madrid"`, s)
	}
	loc, err := loadZone(zone)
	if err != nil {
		return nil, err
	}
	body := strings.TrimSpace(s[:strings.LastIndex(s, zone)])
	if body == "" {
		return nil, fmt.Errorf("%q has only a time zone: put the days and times before it; %s", s, hoursForm)
	}

	h := &Hours{loc: loc}
	var given [7]string // the day group that gave each day its ranges
	for group := range strings.SplitSeq(body, ";") {
		group = strings.TrimSpace(group)
		if group == "" {
			return nil, fmt.Errorf(`%q has an empty day group: separate day groups with a single ";", like "Mon-Fri 09:00-18:00; Sat 10:00-14:00 Europe/Madrid"`, body)
		}
		// Days have no digits, and times start with one.
		i := strings.IndexAny(group, "0123456789")
		if i < 0 {
			return nil, fmt.Errorf(`day group %q has no times: write its time ranges after the days, like "Sat 10:00-14:00"`, group)
		}
		dayText := strings.TrimSpace(group[:i])
		if dayText == "" {
			return nil, fmt.Errorf(`day group %q has no days: write the days before the times, like "Mon-Fri 09:00-18:00"`, group)
		}
		days, err := parseDays(dayText)
		if err != nil {
			return nil, err
		}
		spans, err := parseSpans(group[i:])
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			if given[d] != "" {
				return nil, fmt.Errorf("%s is given hours twice, in %q and in %q: give each day its hours once", dayAbbr(d), given[d], dayText)
			}
			given[d] = dayText
			h.week[d] = spans
		}
	}
	if err := h.checkOverlaps(); err != nil {
		return nil, err
	}
	h.always = true
	for _, spans := range h.week {
		h.always = h.always && slices.Equal(spans, []span{{0, minutesPerDay}})
	}
	return h, nil
}

func loadZone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, fmt.Errorf(`time zone "Local" is whatever the machine is set to: %s`, zoneForm)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: %s", name, zoneForm)
	}
	return loc, nil
}

// parseDays reads a day list, like "Mon-Fri" or "Mon, Wed, Fri-Sun", into
// day indexes, Monday being 0.
func parseDays(s string) ([]int, error) {
	var (
		days []int
		seen [7]bool
	)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		first, last, isRange := strings.Cut(item, "-")
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		if !isRange {
			last = first
		}
		a, okA := dayIndex(first)
		b, okB := dayIndex(last)
		switch {
		case item == "":
			return nil, fmt.Errorf("%q has an empty day: %s", s, dayForm)
		case isRange && (first == "" || last == "" || strings.Contains(last, "-")):
			return nil, fmt.Errorf("%q is not a day range: write it like Mon-Fri", item)
		case !okA:
			return nil, fmt.Errorf("%q is not a day: %s", first, dayForm)
		case !okB:
			return nil, fmt.Errorf("%q is not a day: %s", last, dayForm)
		}
		for d := a; ; d = (d + 1) % 7 {
			if seen[d] {
				return nil, fmt.Errorf("%s is listed twice in %q: list each day once", dayAbbr(d), s)
			}
			seen[d] = true
			days = append(days, d)
			if d == b {
				break
			}
		}
	}
	return days, nil
}

// dayIndex knows a day by its name or by any abbreviation of it of three
// letters or more, so that Tues and Thurs do as well as Tue and Thu.
func dayIndex(s string) (int, bool) {
	if len(s) < 3 {
		return 0, false
	}
	for i := range 7 {
		if n := dayName(i); len(s) <= len(n) && strings.EqualFold(s, n[:len(s)]) {
			return i, true
		}
	}
	return 0, false
}

// parseSpans reads a day group's time ranges, like "09:00-13:00, 14:00-18:00".
func parseSpans(s string) ([]span, error) {
	var spans []span
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%q has an empty time range: %s", strings.TrimSpace(s), rangeForm)
		}
		a, b, ok := strings.Cut(item, "-")
		a, b = strings.TrimSpace(a), strings.TrimSpace(b)
		if !ok || a == "" || b == "" || strings.Contains(b, "-") {
			if strings.ContainsFunc(item, unicode.IsLetter) {
				return nil, fmt.Errorf(`%q is not a time range: %s, and separate day groups with ";", like "Mon-Fri 09:00-18:00; Sat 10:00-14:00"`, item, rangeForm)
			}
			return nil, fmt.Errorf("%q is not a time range: %s", item, rangeForm)
		}
		from, ok := parseClock(a)
		if !ok {
			return nil, fmt.Errorf("%q in %q is not a time: write HH:MM, hours 00 to 23 (24:00 only as an end), minutes 00 to 59", a, item)
		}
		to, ok := parseClock(b)
		if !ok {
			return nil, fmt.Errorf("%q in %q is not a time: write HH:MM, hours 00 to 23 (24:00 only as an end), minutes 00 to 59", b, item)
		}
		switch {
		case from == minutesPerDay:
			return nil, fmt.Errorf("%q starts at 24:00: start it at 00:00 of the next day", item)
		case from == to:
			return nil, fmt.Errorf("%q is empty: a range ends after it starts; 00:00-24:00 is the whole day, and one like 22:00-02:00 crosses midnight", item)
		case to < from:
			to += minutesPerDay
		}
		spans = append(spans, span{from, to})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	return spans, nil
}

// parseClock reads H:MM or HH:MM, 00:00 to 24:00, as minutes.
func parseClock(s string) (int, bool) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || !allDigits(hh) || !allDigits(mm) {
		return 0, false
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	if h > 24 || m > 59 || h == 24 && m != 0 {
		return 0, false
	}
	return h*60 + m, true
}

// checkOverlaps refuses ranges that share a moment, on the same day or
// across midnight (including Sunday's into Monday's).
func (h *Hours) checkOverlaps() error {
	const week = 7 * minutesPerDay
	type piece struct {
		from, to int // minutes from Monday 00:00
		day      int
		s        span
	}
	var pieces []piece
	for d, spans := range h.week {
		for _, s := range spans {
			from, to := d*minutesPerDay+s.from, d*minutesPerDay+s.to
			if to > week {
				pieces = append(pieces, piece{0, to - week, d, s})
				to = week
			}
			pieces = append(pieces, piece{from, to, d, s})
		}
	}
	slices.SortFunc(pieces, func(a, b piece) int { return a.from - b.from })
	for i := 1; i < len(pieces); i++ {
		a, b := pieces[i-1], pieces[i]
		if b.from < a.to {
			return fmt.Errorf("%s overlaps %s: each moment may be in one time range only", spanText(a.day, a.s), spanText(b.day, b.s))
		}
	}
	return nil
}

func spanText(day int, s span) string {
	return dayAbbr(day) + " " + s.String()
}

func (s span) String() string {
	to := s.to
	if to > minutesPerDay {
		to -= minutesPerDay
	}
	return clock(s.from) + "-" + clock(to)
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// WithClosed returns h closed on dates as well as on those it had, each
// ("2026-12-25") a whole day in h's zone. h is not changed.
func (h *Hours) WithClosed(dates []string) (*Hours, error) {
	c := *h
	c.closed = slices.Clone(h.closed)
	for _, s := range dates {
		t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("closed date %q is not a date: %s", s, closedForm)
		}
		c.closed = append(c.closed, civil(t.Date()))
	}
	slices.Sort(c.closed)
	c.closed = slices.Compact(c.closed)
	return &c, nil
}

// civil numbers a calendar date, so that the day before is one less
// whatever the month.
func civil(y int, m time.Month, d int) int {
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / (24 * 60 * 60))
}

func (h *Hours) isClosed(day int) bool {
	_, found := slices.BinarySearch(h.closed, day)
	return found
}

// Open says whether t, in whatever zone, is within the hours, by the wall
// clock of h's zone.
func (h *Hours) Open(t time.Time) bool {
	lt := t.In(h.loc)
	today := civil(lt.Date())
	if h.isClosed(today) {
		return false
	}
	hh, mm, ss := lt.Clock()
	sec := hh*3600 + mm*60 + ss
	wd := (int(lt.Weekday()) + 6) % 7
	for _, s := range h.week[wd] {
		if s.from*60 <= sec && sec < s.to*60 {
			return true
		}
	}
	if h.isClosed(today - 1) {
		return false
	}
	for _, s := range h.week[(wd+6)%7] {
		if sec < (s.to-minutesPerDay)*60 {
			return true
		}
	}
	return false
}

// NextOpen is the first moment at or after t when h is open, t itself if
// it is open then; false if h stays closed for the next 14 days. The
// result is in h's zone.
func (h *Hours) NextOpen(t time.Time) (time.Time, bool) {
	t = t.In(h.loc)
	if h.Open(t) {
		return t, true
	}
	limit := t.Add(lookAhead)
	var next time.Time
	found := false
	// Candidates that turn out closed, or are not the start of anything,
	// are harmless: any open moment at or after t is no earlier than the
	// next opening, which is among them.
	consider := func(c time.Time) {
		if !c.Before(t) && !c.After(limit) && (!found || c.Before(next)) && h.Open(c) {
			next, found = c, true
		}
	}
	// A clock set back can go back into a range, and one set forward can
	// skip into one, past its start.
	for u := t; ; {
		_, end := u.ZoneBounds()
		if end.IsZero() || end.After(limit) {
			break
		}
		consider(end)
		u = end
	}
	y, m, d := t.Date()
	// 15 days after t's date: 14 days ahead can be the 15th date when
	// the clocks went forward in between.
	for k := 0; k <= 15; k++ {
		day := time.Date(y, m, d+k, 12, 0, 0, 0, h.loc)
		dy, dm, dd := day.Date()
		for _, s := range h.week[(int(day.Weekday())+6)%7] {
			c := time.Date(dy, dm, dd, s.from/60, s.from%60, 0, 0, h.loc)
			consider(c)
			// Of a wall time that happens twice, time.Date may give the
			// second; the range opens at the first.
			if start, _ := c.ZoneBounds(); !start.IsZero() {
				_, off := c.Zone()
				_, before := start.Add(-time.Nanosecond).Zone()
				if back := time.Duration(before-off) * time.Second; back > 0 {
					consider(c.Add(-back))
				}
			}
		}
	}
	if !found {
		return time.Time{}, false
	}
	return next, true
}

// String is h in the normalised form ParseHours reads, days with the same
// ranges written together, followed by its closed dates in parentheses,
// like "Mon-Fri 09:00-18:00 Europe/Madrid (closed 2026-12-25, 2027-01-01)".
func (h *Hours) String() string {
	var b strings.Builder
	if h.always {
		b.WriteString("24/7")
	} else {
		var done [7]bool
		for d := range h.week {
			if done[d] || len(h.week[d]) == 0 {
				continue
			}
			var same []int
			for e := d; e < 7; e++ {
				if !done[e] && slices.Equal(h.week[e], h.week[d]) {
					same = append(same, e)
					done[e] = true
				}
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(dayList(same))
			for i, s := range h.week[d] {
				if i == 0 {
					b.WriteByte(' ')
				} else {
					b.WriteString(", ")
				}
				b.WriteString(s.String())
			}
		}
	}
	b.WriteString(" " + h.loc.String())
	for i, day := range h.closed {
		if i == 0 {
			b.WriteString(" (closed ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(time.Unix(int64(day)*24*60*60, 0).UTC().Format(time.DateOnly))
	}
	if len(h.closed) > 0 {
		b.WriteByte(')')
	}
	return b.String()
}

// dayList writes sorted days as runs: three or more days in a row as a
// range (Mon-Fri), others listed (Sat,Sun).
func dayList(days []int) string {
	var parts []string
	for i := 0; i < len(days); {
		j := i
		for j+1 < len(days) && days[j+1] == days[j]+1 {
			j++
		}
		switch {
		case j-i >= 2:
			parts = append(parts, dayAbbr(days[i])+"-"+dayAbbr(days[j]))
		default:
			for k := i; k <= j; k++ {
				parts = append(parts, dayAbbr(days[k]))
			}
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
