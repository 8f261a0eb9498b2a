package sip

import (
	"fmt"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/media"
)

// Bridge relays RTP between the caller's and the answered agent's legs.
// Both legs carry the same codec (the agent was offered only the caller's),
// so only telephone-event's payload type may need rewriting.
func (e *Edge) Bridge(ci call.Inbound, co call.Outbound, onTimeout func(), tap call.Tap) (func(), error) {
	in, ok1 := ci.(*inbound)
	out, ok2 := co.(*outbound)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("bridge: legs of unknown kinds %T, %T", ci, co)
	}
	opt := media.BridgeOptions{
		Timeout:   e.settings.Load().cfg.Media.Timeout,
		OnTimeout: onTimeout,
		Meter:     e.opts.Meter,
		// A caller who heard prompts keeps hearing the same stream.
		ContinueA: in.takeStream(),
	}
	if tap != nil {
		// a is the caller's leg, so a-to-b is what the caller said.
		opt.Tap = tap
	}
	if in.tePT != 0 && out.tePT != 0 && in.tePT != out.tePT {
		opt.PTMapAtoB = map[uint8]uint8{in.tePT: out.tePT}
		opt.PTMapBtoA = map[uint8]uint8{out.tePT: in.tePT}
	}
	b := media.NewBridge(in.ep, out.ep, opt)
	b.Start()
	return b.Stop, nil
}
