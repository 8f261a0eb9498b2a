package calllog

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// googleAdsTime is the conversion time layout of Google Ads' click
// conversion import, with the offset on every row so that it never
// depends on the account's time zone.
const googleAdsTime = "2006-01-02 15:04:05-0700"

// GoogleAdsConversions writes, as a Google Ads offline click conversion
// import file, one conversion per answered call started in [from, to)
// whose visitor carried a gclid. The conversion time is when the call was
// answered, in UTC: the moment the click turned into a conversation.
func (s *Store) GoogleAdsConversions(w io.Writer, from, to time.Time, conversionName string, value float64, currency string) error {
	rows, err := s.db.Query(`SELECT call_id, json_extract(visitor, '$.gclid'), answered_at FROM calls
		WHERE started_at >= ? AND started_at < ? AND outcome = 'answered'
		  AND answered_at IS NOT NULL AND visitor IS NOT NULL
		  AND coalesce(json_extract(visitor, '$.gclid'), '') <> ''
		ORDER BY answered_at, call_id`, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return fmt.Errorf("calllog: google ads export: %w", err)
	}
	defer rows.Close()
	// The parameters line is a single cell; csv.Writer would leave it
	// unquoted anyway, but writing it raw keeps it byte-exact.
	if _, err := io.WriteString(w, "Parameters:TimeZone=+0000\r\n"); err != nil {
		return fmt.Errorf("calllog: google ads export: %w", err)
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write([]string{"Google Click ID", "Conversion Name", "Conversion Time", "Conversion Value", "Conversion Currency"}); err != nil {
		return fmt.Errorf("calllog: google ads export: %w", err)
	}
	val := strconv.FormatFloat(value, 'f', -1, 64)
	name, cur := guardCell(conversionName), guardCell(currency)
	for rows.Next() {
		var id, gclid string
		var answered int64
		if err := rows.Scan(&id, &gclid, &answered); err != nil {
			return fmt.Errorf("calllog: google ads export: %w", err)
		}
		at := time.UnixMilli(answered).UTC().Format(googleAdsTime)
		if err := cw.Write([]string{guardCell(gclid), name, at, val, cur}); err != nil {
			return fmt.Errorf("calllog: google ads export: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("calllog: google ads export: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("calllog: google ads export: %w", err)
	}
	return nil
}
