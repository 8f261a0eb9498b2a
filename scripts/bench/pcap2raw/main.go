// Command pcap2raw writes the RTP payloads of a pcap capture (Ethernet,
// IPv4, UDP, RTP), one after the other, as raw audio: the form sipp's
// rtp_stream action plays. scripts/bench-load.sh turns
// /usr/share/sip-tester/g711a.pcap into raw A-law with it.
//
// Usage: go run ./scripts/bench/pcap2raw IN.pcap OUT.raw
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pcap2raw IN.pcap OUT.raw")
		os.Exit(2)
	}
	n, err := convert(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pcap2raw:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "pcap2raw: %d RTP payload bytes written to %s\n", n, os.Args[2])
}

func convert(in, out string) (int, error) {
	f, err := os.Open(in)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var hdr [24]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, fmt.Errorf("pcap header: %w", err)
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return 0, errors.New("not a pcap file")
	}
	if link := order.Uint32(hdr[20:24]); link != 1 {
		return 0, fmt.Errorf("link type %d, want Ethernet (1)", link)
	}
	var payload []byte
	for {
		var rec [16]byte
		if _, err := io.ReadFull(f, rec[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return 0, fmt.Errorf("record header: %w", err)
		}
		data := make([]byte, order.Uint32(rec[8:12]))
		if _, err := io.ReadFull(f, data); err != nil {
			return 0, fmt.Errorf("record: %w", err)
		}
		if p := rtpPayload(data); p != nil {
			payload = append(payload, p...)
		}
	}
	if len(payload) == 0 {
		return 0, errors.New("no RTP payload found")
	}
	return len(payload), os.WriteFile(out, payload, 0o644)
}

// rtpPayload is the payload of an Ethernet/IPv4/UDP/RTP frame, or nil.
func rtpPayload(frame []byte) []byte {
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 {
		return nil
	}
	ip := frame[14:]
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
		return nil
	}
	udp := ip[int(ip[0]&0x0f)*4:]
	if len(udp) < 8 {
		return nil
	}
	rtp := udp[8:]
	if len(rtp) < 12 || rtp[0]>>6 != 2 {
		return nil
	}
	off := 12 + 4*int(rtp[0]&0x0f)
	if rtp[0]&0x10 != 0 { // header extension
		if len(rtp) < off+4 {
			return nil
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(rtp[off+2:off+4]))
	}
	if len(rtp) < off {
		return nil
	}
	end := len(rtp)
	if rtp[0]&0x20 != 0 && end > off { // padding
		end -= int(rtp[end-1])
	}
	if end < off {
		return nil
	}
	return rtp[off:end]
}
