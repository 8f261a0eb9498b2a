package config

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// parseDuration is time.ParseDuration plus a leading whole-day part ("90d",
// "1d12h"), because retention-like settings are naturally written in days
// and Go durations stop at hours.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 32)
	if err != nil {
		return 0, errors.New("bad day count")
	}
	const maxDays = uint64((1<<63 - 1) / int64(24*time.Hour))
	if n > maxDays {
		return 0, errors.New("too long")
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 || d+r < d {
		return 0, errors.New("bad duration after days")
	}
	return d + r, nil
}
