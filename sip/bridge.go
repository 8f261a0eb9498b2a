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
	in, ok := ci.(*inbound)
	if !ok {
		return nil, fmt.Errorf("bridge: caller leg of unknown kind %T", ci)
	}
	var (
		agentPort media.Port
		agentTE   uint8
	)
	switch out := co.(type) {
	case *outbound:
		agentPort, agentTE = out.ep, out.tePT
	case interface{ MediaPeer() *media.Peer }:
		// A browser: the peer speaks the caller's codec, so the bridge
		// still only relays.
		p := out.MediaPeer()
		agentPort, agentTE = p, p.TelephoneEvent()
	default:
		return nil, fmt.Errorf("bridge: agent leg of unknown kind %T", co)
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
	if in.tePT != 0 && agentTE != 0 && in.tePT != agentTE {
		opt.PTMapAtoB = map[uint8]uint8{in.tePT: agentTE}
		opt.PTMapBtoA = map[uint8]uint8{agentTE: in.tePT}
	}
	b := media.NewBridge(in.ep, agentPort, opt)
	b.Start()
	return b.Stop, nil
}
