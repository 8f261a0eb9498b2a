package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzLoad loads files of any bytes. A file either loads into a
// configuration whose every reference (a number's flow, a step's or
// menu's queue and flow, a queue's agents and overflow) is defined, or
// fails with problems that each print as one FILE:LINE:COL: line inside
// the file, which is what editors and `callsign check` rely on.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/*.yaml", "testdata/bad/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil || len(files) == 0 {
			f.Fatalf("seeds %s: %v", pattern, err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	// The files are loaded from a directory with the test prompts, so
	// that the seeds that name them load as they do in the unit tests.
	dir := f.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "prompts"), os.DirFS("testdata/prompts")); err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{
		"TEST_ADMIN_TOKEN", "TEST_BOB_PASSWORD", "HTTP_HOST", "TOKEN_A", "TOKEN_B", "CARRIER_NET",
		"MAX_CALLS", "CAMPAIGN", "BOB_SIP_PASSWORD", "CALLSIGN_ADMIN_TOKEN", "ALICE_TOKEN",
		"POOL_NUMBER", "POOL_OVERFLOW",
	} {
		f.Setenv(name, "1")
	}
	path := filepath.Join(dir, "callsign.yaml")

	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err == nil {
			if c == nil {
				t.Fatalf("%q: no configuration and no error", data)
			}
			checkReferences(t, data, c)
			return
		}
		if c != nil {
			t.Fatalf("%q: a configuration and an error", data)
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("%q: error %T %v is not a list of problems", data, err, err)
		}
		lines := lineCount(data)
		for _, p := range errs {
			prefix := path + ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col) + ": "
			s := p.String()
			if p.File != path || p.Line < 1 || p.Col < 1 || p.Line > lines || p.Msg == "" ||
				!strings.HasPrefix(s, prefix) || strings.ContainsAny(s, "\r\n") {
				t.Fatalf("%q (%d lines): problem %q is not one FILE:LINE:COL: line in the file", data, lines, s)
			}
		}
	})
}

func checkReferences(t *testing.T, data []byte, c *Config) {
	t.Helper()
	queue := func(what, q string) {
		if _, ok := c.Queues[q]; !ok {
			t.Fatalf("%q: %s names queue %q, which is not defined", data, what, q)
		}
	}
	flow := func(what, fl string) {
		if _, ok := c.Flows[fl]; !ok {
			t.Fatalf("%q: %s names flow %q, which is not defined", data, what, fl)
		}
	}
	action := func(what string, a Action) {
		switch {
		case a.Queue != "":
			queue(what, a.Queue)
		case a.Flow != "":
			flow(what, a.Flow)
		case !a.Hangup:
			t.Fatalf("%q: %s leads nowhere", data, what)
		}
	}
	if len(c.Trunks) == 0 {
		t.Fatalf("%q: loaded without trunks", data)
	}
	for e164, n := range c.Numbers {
		if n.E164 != e164 || !strings.HasPrefix(e164, "+") {
			t.Fatalf("%q: number %q keyed %q", data, n.E164, e164)
		}
		flow("number "+e164, n.Flow)
	}
	owner := map[string]string{}
	for name, p := range c.Pools {
		flow("pool "+name, p.Flow)
		if len(p.Numbers) == 0 || p.Replace == "" || p.Overflow == "" || p.Hold <= 0 {
			t.Fatalf("%q: pool %s is incomplete: %+v", data, name, p)
		}
		for _, n := range p.Numbers {
			if o, dup := owner[n]; dup {
				t.Fatalf("%q: number %s is in pools %s and %s", data, n, o, name)
			}
			if _, static := c.Numbers[n]; static {
				t.Fatalf("%q: pool %s number %s is also static", data, name, n)
			}
			owner[n] = name
		}
	}
	for name, p := range c.Pools {
		if _, taken := owner[p.Overflow]; taken {
			t.Fatalf("%q: pool %s overflow %s is a pool number", data, name, p.Overflow)
		}
	}
	for name, fl := range c.Flows {
		for _, st := range fl.Steps {
			switch {
			case st.Queue != "":
				queue("flow "+name, st.Queue)
			case st.Menu != nil:
				for _, a := range st.Menu.Options {
					action("a menu of flow "+name, a)
				}
				if st.Menu.Default != nil {
					action("a menu default of flow "+name, *st.Menu.Default)
				}
			}
		}
	}
	for name, q := range c.Queues {
		for _, a := range q.Agents {
			if _, ok := c.Agents[a]; !ok {
				t.Fatalf("%q: queue %s names agent %q, which is not defined", data, name, a)
			}
		}
		for a := range q.Priority {
			if _, ok := c.Agents[a]; !ok {
				t.Fatalf("%q: queue %s gives agent %q a priority, which is not defined", data, name, a)
			}
		}
		if q.Overflow != nil {
			queue("the overflow of queue "+name, q.Overflow.Queue)
		}
	}
	for id, a := range c.Agents {
		if (a.SIP == nil) == (a.WebRTC == nil) {
			t.Fatalf("%q: agent %s is not exactly one of SIP and WebRTC", data, id)
		}
	}
	if c.Media.PortMin > c.Media.PortMax {
		t.Fatalf("%q: RTP ports %d-%d", data, c.Media.PortMin, c.Media.PortMax)
	}
}
