package events

import (
	"math"
	"strconv"
	"time"
)

// EventPoolPressure is published when a DNI pool's use crosses its
// pressure threshold upwards: soon every number is held and new visitors
// get the overflow number, their visits unattributed, so the pool wants
// more numbers.
const EventPoolPressure = "pool.pressure"

// PoolPressure is a pool's use at the moment it crossed the threshold.
type PoolPressure struct {
	Pool string
	// At is when it crossed; now when zero.
	At time.Time
	// Held of Numbers are held by visitors.
	Held, Numbers int
	// Threshold is the share of Numbers held that counts as pressure; an
	// event without it (zero) leaves it out.
	Threshold float64
	// Overflows is how many visitors were shown the overflow number since
	// the edge started, so a consumer can tell whether attribution is
	// already being lost.
	Overflows uint64
}

// PublishPoolPressure queues a pool.pressure event. It goes the way of
// call events, through the outbox, so it survives a NATS outage and keeps
// its place among them; like Publish it never blocks.
func (p *Publisher) PublishPoolPressure(pp PoolPressure) {
	if pp.At.IsZero() {
		pp.At = time.Now()
	}
	id := newID(pp.At)
	data, err := MarshalPoolPressure(id, pp)
	if err != nil {
		p.dropped.Add(1)
		p.log.Error().Err(err).Str("event", EventPoolPressure).Str("pool", pp.Pool).Msg("event not encodable; dropped")
		return
	}
	if why := p.enqueue(&message{subject: p.prefix + "." + EventPoolPressure, id: id, data: data}); why != "" {
		p.log.Error().Str("event", EventPoolPressure).Str("pool", pp.Pool).Str("id", id).Msg(why)
	}
}

// MarshalPoolPressure encodes a pool.pressure event as the documented
// JSON object. held, numbers and overflow_total are always there: zero is
// a real count. used is held/numbers rounded to four places, enough to
// compare with the threshold; the exact counts are beside it.
func MarshalPoolPressure(id string, pp PoolPressure) ([]byte, error) {
	b := make([]byte, 0, 192+len(id)+len(pp.Pool))
	b = append(b, '{')
	b = appendStringField(b, "event", EventPoolPressure, true)
	b = appendStringField(b, "id", id, false)
	b = appendTimeField(b, "at", pp.At)
	b = appendStringField(b, "pool", pp.Pool, false)
	b = appendIntField(b, "held", int64(pp.Held))
	b = appendIntField(b, "numbers", int64(pp.Numbers))
	// A pool without numbers has no share in use; absent, not NaN, which
	// JSON cannot carry.
	if pp.Numbers > 0 {
		b = appendFloatField(b, "used", float64(pp.Held)/float64(pp.Numbers))
	}
	if pp.Threshold > 0 && !math.IsInf(pp.Threshold, 0) {
		b = appendFloatField(b, "threshold", pp.Threshold)
	}
	b = append(b, `,"overflow_total":`...)
	b = strconv.AppendUint(b, pp.Overflows, 10)
	return append(b, '}'), nil
}

// appendFloatField writes a share rounded to four places, in the shortest
// form that reads back as that rounding (0.8, not 0.8000).
func appendFloatField(b []byte, key string, v float64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendFloat(b, math.Round(v*1e4)/1e4, 'f', -1, 64)
}
