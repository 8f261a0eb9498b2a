package config

import (
	"errors"
	"strings"
)

var (
	errNoPlus   = errors.New("must start with +country code")
	errNotE164  = errors.New("not a valid E.164 number")
	errEmptyNum = errors.New("empty number")
)

// NormalizeNumber turns a phone number as an operator writes it
// ("+1 (555) 010-0001") into E.164 ("+15550100001"). Spaces, dashes, dots
// and parentheses are only visual, so they are dropped; the country code is
// required because a tracking number must be unambiguous.
func NormalizeNumber(s string) (string, error) {
	d := stripSeparators(s)
	if d == "" {
		return "", errEmptyNum
	}
	digits, plus := strings.CutPrefix(d, "+")
	if !allDigits(digits) {
		return "", errNotE164
	}
	if !plus {
		return "", errNoPlus
	}
	if !validE164Digits(digits) {
		return "", errNotE164
	}
	return "+" + digits, nil
}

// NormalizeDialed turns the user part of a dialed SIP URI into E.164.
// Carriers send the number with or without '+' (sometimes escaped as %2B)
// and may append URI parameters such as ;phone-context, so this is more
// lenient than NormalizeNumber: a missing '+' is assumed to mean the digits
// already start with the country code.
func NormalizeDialed(user string) (string, bool) {
	user, _, _ = strings.Cut(user, ";")
	d := stripSeparators(user)
	if len(d) >= 3 && strings.EqualFold(d[:3], "%2b") {
		d = "+" + d[3:]
	}
	d = strings.TrimPrefix(d, "+")
	if !allDigits(d) || !validE164Digits(d) {
		return "", false
	}
	return "+" + d, true
}

func stripSeparators(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '-', '.', '(', ')':
			return -1
		}
		return r
	}, s)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validE164Digits checks the digits after '+': E.164 allows at most 15, and
// fewer than 8 is no real international number, so it is most likely a typo.
// Country codes never start with 0.
func validE164Digits(d string) bool {
	return len(d) >= 8 && len(d) <= 15 && d[0] != '0'
}
