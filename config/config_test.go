package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/prompts"
)

// envOf gives a lookup function over a fixed map, so tests never see the
// real environment.
func envOf(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func load(t *testing.T, path string, env map[string]string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return LoadBytes(path, data, envOf(env))
}

func mustLoad(t *testing.T, path string, env map[string]string) *Config {
	t.Helper()
	c, err := load(t, path, env)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return c
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestValid(t *testing.T) {
	c := mustLoad(t, "testdata/valid.yaml", map[string]string{
		"TEST_ADMIN_TOKEN":  "s3cret",
		"TEST_BOB_PASSWORD": "bob-pw",
	})
	want := &Config{
		Path: "testdata/valid.yaml",
		SIP: SIP{
			Listen: []Listen{
				{Transport: "udp", Addr: netip.MustParseAddrPort("0.0.0.0:5070")},
				{Transport: "tcp", Addr: netip.MustParseAddrPort("[::1]:5071")},
			},
			Advertise: "edge.example.com",
		},
		Media: Media{Address: netip.MustParseAddr("0.0.0.0"), PortMin: 30000, PortMax: 30099, Timeout: time.Minute},
		HTTP:  HTTP{Listen: "127.0.0.1:8080", AdminToken: "s3cret"},
		Events: Events{
			Servers:        []string{"nats://10.0.0.5:4222", "nats://10.0.0.6:4222"},
			EmbeddedListen: "127.0.0.1:4222",
			SubjectPrefix:  "acme.calls",
		},
		Storage: Storage{Dir: abs(t, "testdata/var/spool")},
		Trunks: map[string]*Trunk{
			"carrier": {Name: "carrier", MaxCalls: 500, CPS: 100, Allow: []netip.Prefix{
				netip.MustParsePrefix("127.0.0.0/8"),
				netip.MustParsePrefix("192.0.2.7/32"),
				netip.MustParsePrefix("10.1.0.0/16"),
				netip.MustParsePrefix("2001:db8::/32"),
			}},
			"backup": {Name: "backup", Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/32")}},
		},
		Pools: map[string]*Pool{},
		Numbers: map[string]*Number{
			"+15550100001":  {E164: "+15550100001", Source: "google-ads", Medium: "cpc", Campaign: "spring-sale", Keyword: "plumber", Flow: "sales"},
			"+442079460000": {E164: "+442079460000", Source: "billboard", Flow: "support"},
			"+15550100003":  {E164: "+15550100003", Flow: "sales"},
		},
		Flows: map[string]*Flow{
			"sales":   {Name: "sales", Steps: []Step{{Queue: "sales"}}, Record: RecordOff},
			"support": {Name: "support", Steps: []Step{{Queue: "support"}}, Record: RecordOff},
			"unused":  {Name: "unused", Steps: []Step{{Queue: "support"}}, Record: RecordOff},
		},
		Queues: map[string]*Queue{
			"sales":   {Name: "sales", Strategy: "round-robin", RingTimeout: 10 * time.Second, MaxWait: 90 * 24 * time.Hour, Agents: []string{"bob", "carol"}, NoAnswer: ActionHangup},
			"support": {Name: "support", Strategy: "round-robin", RingTimeout: 20 * time.Second, Agents: []string{"carol"}, NoAnswer: ActionHangup},
		},
		Agents: map[string]*Agent{
			"bob":   {ID: "bob", Name: "Bob", SIP: &AgentSIP{Username: "bob", Password: "bob-pw"}},
			"carol": {ID: "carol", Name: "carol", SIP: &AgentSIP{Contact: "sip:carol@127.0.0.1:5090;transport=udp"}},
		},
		Recording: Recording{AcceptDigit: '1', AskTimeout: 5 * time.Second},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%s\nwant\n%s", dump(c), dump(want))
	}
	if got, wantS := c.Summary(), "testdata/valid.yaml: ok — 3 numbers, 3 flows, 2 queues, 2 agents, 2 trunks"; got != wantS {
		t.Errorf("Summary() = %q, want %q", got, wantS)
	}
}

// dump shows a Config with what its pointers point to, for failure output.
func dump(c *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%+v %+v %+v %+v %+v %+v %s\n", c.SIP, c.Media, c.HTTP, c.Events, c.Storage, c.Recording, c.Path)
	for _, m := range []any{c.Trunks, c.Numbers, c.Flows, c.Queues, c.Agents} {
		v := reflect.ValueOf(m)
		for _, k := range v.MapKeys() {
			e := v.MapIndex(k).Elem().Interface()
			fmt.Fprintf(&b, "%s: %+v", k, e)
			if a, ok := e.(Agent); ok && a.SIP != nil {
				fmt.Fprintf(&b, " sip=%+v", *a.SIP)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, "testdata/defaults.yaml", nil)
	checks := []struct {
		name      string
		got, want any
	}{
		{"sip listen", c.SIP.Listen, []Listen{
			{Transport: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5060")},
			{Transport: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:5060")},
		}},
		{"sip advertise", c.SIP.Advertise, "127.0.0.1"},
		{"media", c.Media, Media{Address: netip.MustParseAddr("127.0.0.1"), PortMin: 20000, PortMax: 20999, Timeout: 30 * time.Second}},
		{"http", c.HTTP, HTTP{Listen: "127.0.0.1:8080"}},
		{"events", c.Events, Events{Embedded: true, EmbeddedListen: "127.0.0.1:4222", SubjectPrefix: "callsign"}},
		{"storage", c.Storage.Dir, abs(t, "testdata/data")},
		{"trunk", *c.Trunks["carrier"], Trunk{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}},
		{"queue", *c.Queues["sales"], Queue{Name: "sales", Strategy: "round-robin", RingTimeout: 20 * time.Second, Agents: []string{"bob"}, NoAnswer: ActionHangup}},
		{"agent name", c.Agents["bob"].Name, "bob"},
		{"flow record", c.Flows["sales"].Record, RecordOff},
		{"number record", c.Numbers["+15550100001"].Record, ""},
		{"recording", c.Recording, Recording{AcceptDigit: '1', AskTimeout: 5 * time.Second}},
		{"summary", c.Summary(), "testdata/defaults.yaml: ok — 1 number, 1 flow, 1 queue, 1 agent, 1 trunk"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %+v, want %+v", ch.name, ch.got, ch.want)
		}
	}
}

func TestExample(t *testing.T) {
	c, err := Load("../examples/callsign.yaml")
	if err != nil {
		t.Fatalf("examples/callsign.yaml must load: %v", err)
	}
	if got, want := c.Summary(), "../examples/callsign.yaml: ok — 3 numbers, 1 pool (20 numbers), 2 flows, 2 queues, 3 agents, 1 trunk, 3 prompts, recording: 1 flow asks, 1 announces"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if q := c.Queues["sales"]; q.MaxWait != 2*time.Minute || q.RingTimeout != 20*time.Second {
		t.Errorf("queue sales = %+v", q)
	}
	if a := c.Agents["carol"]; a.SIP == nil || a.SIP.Contact != "sip:carol@127.0.0.1:5090" {
		t.Errorf("agent carol = %+v", a)
	}
}

func TestFlows(t *testing.T) {
	c := mustLoad(t, "testdata/flows.yaml", nil)
	main, support, closed := c.Flows["main"], c.Flows["support"], c.Flows["closed"]
	if len(main.Steps) != 3 || len(support.Steps) != 1 || len(closed.Steps) != 1 {
		t.Fatalf("steps: main %+v, support %+v, closed %+v", main.Steps, support.Steps, closed.Steps)
	}
	welcome, tone16k, menu := main.Steps[0].Play, main.Steps[1].Play, main.Steps[2].Menu
	sub := support.Steps[0].Menu
	if welcome == nil || tone16k == nil || menu == nil || sub == nil || closed.Steps[0].Play == nil {
		t.Fatalf("steps: main %+v, support %+v, closed %+v", main.Steps, support.Steps, closed.Steps)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"built-in prompt", welcome.Path, "builtin:welcome.wav"},
		{"prompt file", tone16k.Path, abs(t, "testdata/prompts/tone-16k.wav")},
		{"menu prompt", menu.Prompt.Path, abs(t, "testdata/prompts/tone-8k.wav")},
		{"default timeout", menu.Timeout, 5 * time.Second},
		{"default retries", menu.Retries, 2},
		{"no default", menu.Default, (*Action)(nil)},
		{"no invalid prompt", menu.InvalidPrompt, (*Prompt)(nil)},
		{"options", menu.Options, map[byte]Action{
			'1': {Queue: "sales"}, '2': {Flow: "support"}, '*': {Hangup: true}, '#': {Flow: "main"}, '0': {Flow: "closed"},
		}},
		{"timeout", sub.Timeout, 3 * time.Second},
		{"no retries", sub.Retries, 0},
		{"default", sub.Default, &Action{Queue: "sales"}},
		{"invalid prompt", sub.InvalidPrompt.Path, "builtin:invalid.wav"},
		{"options of support", sub.Options, map[byte]Action{'9': {Flow: "main"}}},
		{"play of closed", closed.Steps[0].Play.Path, "builtin:goodbye.wav"},
		{"8 kHz file as is", menu.Prompt.PCMU.Duration(), 200 * time.Millisecond},
		{"16 kHz file resampled", tone16k.PCMA.Frames(), 10},
		{"summary", c.Summary(), "testdata/flows.yaml: ok — 1 number, 3 flows, 1 queue, 1 agent, 1 trunk, 5 prompts"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %+v, want %+v", ch.name, ch.got, ch.want)
		}
	}
	if sub.Prompt != menu.Prompt {
		t.Error("prompts/tone-8k.wav and ./prompts/tone-8k.wav must be one Prompt")
	}
	for _, p := range []*Prompt{welcome, tone16k, menu.Prompt, sub.InvalidPrompt} {
		if p.PCMU == nil || p.PCMA == nil || p.For("PCMU") != p.PCMU || p.For("PCMA") != p.PCMA || p.For("G722") != nil {
			t.Errorf("%s: PCMU %v, PCMA %v", p.Path, p.PCMU, p.PCMA)
			continue
		}
		if p.PCMU.Codec() != "PCMU" || p.PCMA.Codec() != "PCMA" || p.PCMU.Duration() != p.PCMA.Duration() || p.PCMU.Name() != p.Path {
			t.Errorf("%s: PCMU %s %v %s, PCMA %s %v", p.Path, p.PCMU.Codec(), p.PCMU.Duration(), p.PCMU.Name(), p.PCMA.Codec(), p.PCMA.Duration())
		}
	}
	if d := welcome.PCMU.Duration(); d < 4*time.Second || d > 5*time.Second {
		t.Errorf("built-in welcome.wav lasts %v, want about 4.5s", d)
	}

	// Prompts belong to one load: a reload reads the files again, so an
	// operator's new recording is picked up.
	again := mustLoad(t, "testdata/flows.yaml", nil)
	if again.Flows["main"].Steps[0].Play == welcome || again.Flows["support"].Steps[0].Menu.Prompt == sub.Prompt {
		t.Error("two loads share prompts")
	}
}

func TestRecording(t *testing.T) {
	c := mustLoad(t, "testdata/recording.yaml", nil)
	r := c.Recording
	if r.AnnouncePrompt == nil || r.AskPrompt == nil {
		t.Fatalf("recording prompts: announce %v, ask %v", r.AnnouncePrompt, r.AskPrompt)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"flow asks", c.Flows["sales"].Record, RecordAsk},
		{"flow announces", c.Flows["support"].Record, RecordAnnounce},
		{"flow off", c.Flows["quiet"].Record, RecordOff},
		{"flow off by default", c.Flows["plain"].Record, RecordOff},
		{"number with its flow's mode", c.Numbers["+15550100001"].Record, ""},
		{"number off in a flow that asks", c.Numbers["+15550100002"].Record, RecordOff},
		{"number asks in a flow that announces", c.Numbers["+15550100003"].Record, RecordAsk},
		{"retention in days", r.Retention, 90 * 24 * time.Hour},
		{"announce prompt file", r.AnnouncePrompt.Path, abs(t, "testdata/prompts/tone-8k.wav")},
		{"default ask prompt", r.AskPrompt.Path, "builtin:recording-consent.wav"},
		{"unquoted accept digit", r.AcceptDigit, byte('9')},
		{"ask timeout", r.AskTimeout, 3 * time.Second},
		{"summary", c.Summary(), "testdata/recording.yaml: ok — 4 numbers, 4 flows, 1 queue, 1 agent, 1 trunk, recording: 1 flow asks, 1 announces, 1 number asks"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %+v, want %+v", ch.name, ch.got, ch.want)
		}
	}
	if r.AskPrompt.PCMU == nil || r.AskPrompt.PCMA == nil || r.AnnouncePrompt.PCMU.Duration() != 200*time.Millisecond {
		t.Errorf("consent prompts not encoded: ask %+v, announce %+v", r.AskPrompt, r.AnnouncePrompt)
	}
}

// TestRecordDefaults checks that record modes work without a recording
// section, with the built-in consent prompts.
func TestRecordDefaults(t *testing.T) {
	c := mustLoad(t, "testdata/record_defaults.yaml", nil)
	r := c.Recording
	if r.AnnouncePrompt == nil || r.AskPrompt == nil {
		t.Fatalf("recording prompts: announce %v, ask %v", r.AnnouncePrompt, r.AskPrompt)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"announce prompt", r.AnnouncePrompt.Path, "builtin:recording-notice.wav"},
		{"ask prompt", r.AskPrompt.Path, "builtin:recording-consent.wav"},
		{"accept digit", r.AcceptDigit, byte('1')},
		{"ask timeout", r.AskTimeout, 5 * time.Second},
		{"retention", r.Retention, time.Duration(0)},
		{"number override", c.Numbers["+15550100002"].Record, RecordAnnounce},
		{"summary", c.Summary(), "testdata/record_defaults.yaml: ok — 2 numbers, 1 flow, 1 queue, 1 agent, 1 trunk, recording: 1 flow asks, 1 number announces"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %+v, want %+v", ch.name, ch.got, ch.want)
		}
	}
	if r.AskPrompt.PCMU == nil || r.AnnouncePrompt.PCMA == nil {
		t.Errorf("consent prompts not encoded: ask %+v, announce %+v", r.AskPrompt, r.AnnouncePrompt)
	}
}

// TestRecordingSection checks the values the recording section takes when
// no flow or number records.
func TestRecordingSection(t *testing.T) {
	base, err := os.ReadFile("testdata/defaults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		section string
		want    Recording
	}{
		{"recording:\n", Recording{AcceptDigit: '1', AskTimeout: 5 * time.Second}},
		{"recording: {retention: 0}\n", Recording{AcceptDigit: '1', AskTimeout: 5 * time.Second}},
		{"recording: {retention: 1d12h, consent: {accept_digit: 1}}\n", Recording{Retention: 36 * time.Hour, AcceptDigit: '1', AskTimeout: 5 * time.Second}},
		{"recording: {consent: {accept_digit: 0, timeout: 1m}}\n", Recording{AcceptDigit: '0', AskTimeout: time.Minute}},
		{"recording: {consent: {accept_digit: \"*\", timeout: 500ms}}\n", Recording{AcceptDigit: '*', AskTimeout: 500 * time.Millisecond}},
		{"recording:\n  consent:\n    accept_digit: \"#\"\n    announce_prompt:\n", Recording{AcceptDigit: '#', AskTimeout: 5 * time.Second}},
	}
	for _, tt := range tests {
		c, err := LoadBytes("testdata/recording-section.yaml", append(base[:len(base):len(base)], tt.section...), envOf(nil))
		if err != nil {
			t.Errorf("%q: %v", tt.section, err)
			continue
		}
		if c.Recording != tt.want {
			t.Errorf("%q: Recording = %+v, want %+v", tt.section, c.Recording, tt.want)
		}
		if !strings.HasSuffix(c.Summary(), "1 trunk") {
			t.Errorf("%q: Summary() = %q, want no recording", tt.section, c.Summary())
		}
	}
}

// TestDefaultConsentFile checks that a default consent prompt is read from
// prompts/NAME.wav beside the configuration when there is one, and that a
// file there that cannot play is reported at the record mode needing it.
func TestDefaultConsentFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "callsign.yaml")
	data, err := os.ReadFile("testdata/record_defaults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "prompts"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "prompts", to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("testdata/prompts/tone-8k.wav", "recording-consent.wav")
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Recording.AskPrompt.Path, filepath.Join(dir, "prompts", "recording-consent.wav"); got != want {
		t.Errorf("AskPrompt.Path = %q, want %q", got, want)
	}

	copyFile("testdata/prompts/not-audio.wav", "recording-notice.wav")
	_, err = Load(cfg)
	want := cfg + `:7:44: number "+1 555 010 0002" record announce plays the default recording consent announce_prompt: prompt "prompts/recording-notice.wav": not a WAV file (no RIFF/WAVE header)`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

// TestBuiltinOverride checks that prompts/NAME.wav plays the built-in copy
// from wherever the configuration is, unless that file is there.
func TestBuiltinOverride(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "callsign.yaml")
	data, err := os.ReadFile("testdata/defaults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "      - queue: sales", "      - play: prompts/welcome.wav\n      - queue: sales", 1))
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Flows["sales"].Steps[0].Play.Path; got != "builtin:welcome.wav" {
		t.Errorf("without the file, Path = %q, want builtin:welcome.wav", got)
	}

	tone, err := os.ReadFile("testdata/prompts/tone-8k.wav")
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "prompts", "welcome.wav")
	if err := os.Mkdir(filepath.Dir(own), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(own, tone, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(cfg); err != nil {
		t.Fatal(err)
	}
	if p := c.Flows["sales"].Steps[0].Play; p.Path != own || p.PCMU.Duration() != 200*time.Millisecond {
		t.Errorf("with the file, Path = %q lasting %v, want %s lasting 200ms", p.Path, p.PCMU.Duration(), own)
	}
}

// TestBuiltinPrompts checks that every shipped prompt is built in and can
// be played.
func TestBuiltinPrompts(t *testing.T) {
	files, err := filepath.Glob("../prompts/*.wav")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		want = append(want, filepath.Base(f))
	}
	names := prompts.Names()
	if len(want) == 0 || !reflect.DeepEqual(names, want) {
		t.Fatalf("prompts.Names() = %q, want %q", names, want)
	}
	for _, name := range names {
		data, ok := prompts.Lookup(name)
		if !ok {
			t.Errorf("Lookup(%q) found nothing", name)
			continue
		}
		if p := readPrompt(builtinPrefix + name); p.fail != "" {
			t.Errorf("%s: %s", name, p.fail)
		}
		data[0] = 'X'
		if again, _ := prompts.Lookup(name); again[0] != 'R' {
			t.Errorf("Lookup(%q) returned the built-in bytes themselves", name)
		}
	}
	for _, name := range []string{"nope.wav", "README.md", "", ".", "../prompts/welcome.wav", "./welcome.wav"} {
		if _, ok := prompts.Lookup(name); ok {
			t.Errorf("Lookup(%q) found a prompt", name)
		}
	}
}

// TestProblems checks that each kind of mistake is reported with exactly
// this message at this line and column, and that nothing else is reported.
func TestProblems(t *testing.T) {
	tests := []struct {
		file string
		want []string // without the "testdata/bad/FILE.yaml:" prefix
	}{
		{"unknown_key", []string{
			`4:5: unknown key "max_call" in trunk "carrier" (known: allow, max_calls, cps)`,
		}},
		{"unknown_key_typo", []string{
			`2:3: trunk "carrier" has no allow: list the carrier's addresses (CIDR or IP) that may place calls`,
			`3:5: unknown key "alow" in trunk "carrier" (known: allow, max_calls, cps)`,
		}},
		{"bad_number", []string{`5:3: number "+1 555 01": not a valid E.164 number`}},
		{"no_plus", []string{`5:3: number "1 555 010 0001": must start with +country code`}},
		{"duplicate_number", []string{
			`6:3: number "+1 (555) 010-0001" is a duplicate of "+1 555 010 0001" (line 5): both are +15550100001`,
		}},
		{"number_no_flow", []string{`5:3: number "+1 555 010 0001" has no flow: say which flow its calls run`}},
		{"missing_flow", []string{`5:29: number "+1 555 010 0001" names flow "sale", which is not defined`}},
		{"missing_queue", []string{`9:16: flow "sales" names queue "salse", which is not defined`}},
		{"missing_agent", []string{`12:19: queue "sales" names agent "carl", which is not defined`}},
		{"unset_env", []string{`15:36: ${BOB_SIP_PASSWORD} is not set`}},
		{"env_bad_name", []string{
			`2:16: ${1BAD} is not a valid variable reference (NAME is letters, digits and _, not starting with a digit)`,
			`2:16: ${OK} is not set`,
		}},
		{"bad_cidr", []string{
			`3:27: bad CIDR "10.0.0.0/33" in trunk "carrier" allow`,
			`3:40: bad CIDR "example.com" in trunk "carrier" allow`,
		}},
		{"empty_allow", []string{`3:12: trunk "carrier" allow is empty: list the carrier's addresses (CIDR or IP)`}},
		{"wrong_types", []string{
			`3:12: trunk "carrier" allow must be a list, got the string "192.0.2.0/24"`,
			`4:16: trunk "carrier" max_calls must be a whole number of 0 or more, got "many"`,
			`5:10: trunk "carrier" cps must be a whole number of 0 or more, got "1.5"`,
			`6:8: media must be a map (key: value), got a list`,
		}},
		{"bad_listen", []string{
			`3:7: sip listen "0.0.0.0:5060": must be udp://host:port, tcp://host:port or tls://host:port`,
			`4:7: sip listen "sctp://127.0.0.1:5061": transport "sctp" is not supported (use udp, tcp or tls)`,
			`5:7: sip listen "udp://localhost:5060": host "localhost" must be an IP address`,
			`6:7: sip listen "udp://127.0.0.1:99999": port "99999" must be 1-65535`,
		}},
		{"unspecified_listen", []string{
			`2:12: sip advertise is required when sip listen binds 0.0.0.0: it is the address written into Via, Contact and SDP`,
		}},
		{"bad_media", []string{
			`2:12: media address "localhost" must be an IP address`,
			`3:14: media rtp_ports "20001-20999": LO must be even (RTP takes the even port, RTCP the odd one above it)`,
			`4:12: media timeout "30" is not a duration (like 30s, 2m, 1h30m, 90d)`,
		}},
		{"bad_rtp_range", []string{`2:14: media rtp_ports "20000-10000": LO must be less than HI`}},
		{"bad_nats", []string{
			`2:9: events nats: "http://10.0.0.6" is not a nats:// URL (give "embedded" or a comma-separated list like nats://10.0.0.5:4222,nats://10.0.0.6:4222)`,
		}},
		{"bad_queue", []string{
			`13:19: queue "sales" ring_timeout must be more than 0`,
			`14:15: queue "sales" max_wait "soon" is not a duration (like 30s, 2m, 1h30m, 90d)`,
			`15:15: queue "sales": unknown strategy "rr" (supported: round-robin, longest-idle, fewest-calls, ring-all)`,
		}},
		{"bad_queue_keys", []string{
			`13:34: queue "sales" agents priority must be from 1 (rung first) to 100, got 0`,
			`13:38: queue "sales" agents entry needs an id, like {id: alice, priority: 1}`,
			`14:14: queue "sales" wrap_up "later" is not a duration (like 30s, 2m, 1h30m, 90d)`,
			`15:35: queue "sales" overflows into itself`,
			`16:16: queue "sales" no_answer must be hangup or voicemail, got "email"`,
			`17:29: queue "sales" voicemail max_length must be more than 0`,
			`17:43: queue "sales" voicemail greeting: prompt "prompts/nope.wav": no such file (looked for $TESTDATA/bad/prompts/nope.wav); built in: prompts/closed.wav, prompts/goodbye.wav, prompts/hold-music.wav, prompts/invalid.wav, prompts/recording-consent.wav, prompts/recording-notice.wav, prompts/sales-menu.wav, prompts/voicemail-greeting.wav, prompts/welcome.wav`,
			`20:35: queue "support" overflows into queue "billing", which is not defined`,
			`23:15: queue "other" overflow needs after and queue, like overflow: {after: 60s, queue: support}`,
			`26:12: queue "night" hours: unknown time zone "Mars/Olympus": use an IANA time zone name, like Europe/Madrid, America/New_York or UTC`,
			`29:13: queue "holidays" has closed dates but no hours: give hours too, like hours: Mon-Fri 09:00-18:00 Europe/Madrid`,
			`34:13: queue "xmas" closed date "2026-12-32" is not a date: write closed dates as YYYY-MM-DD, like 2026-12-25`,
			`35:18: queue "xmas" after_hours must be hangup or voicemail, got "leave"`,
		}},
		{"agent_both", []string{`15:52: agent "bob" sip: give either contact or username+password, not both`}},
		{"bad_digest", []string{
			`2:28: sip digest_algorithms: "SHA-512-256" is not supported (MD5 or SHA-256)`,
			`2:41: sip digest_algorithms lists MD5 twice`,
		}},
		{"sip_tls_missing", []string{
			`4:7: a tls:// listener needs sip tls: {cert, key}, the certificate it presents`,
		}},
		{"sip_tls_files", []string{
			`5:15: sip tls: cannot use cert "missing.crt" with key "missing.key": missing.crt: no such file or directory`,
		}},
		{"sip_tls_unused", []string{
			`4:3: sip tls is set but no sip listen entry is tls://host:port`,
			`4:15: sip tls: cannot use cert "missing.crt" with key "missing.key": missing.crt: no such file or directory`,
		}},
		{"http_tls", []string{
			`3:15: http tls: cannot use cert "missing.crt" with key "missing.key": missing.crt: no such file or directory`,
		}},
		{"agent_webrtc_and_sip", []string{
			`16:5: agent "bob" has both sip and webrtc: an agent answers on one of them, so give one (or define two agents)`,
		}},
		{"agent_webrtc_bad", []string{
			`15:5: agent "alice" webrtc needs a token, like webrtc: {token: "${ALICE_TOKEN}"}`,
			`17:21: agent "bob" webrtc token must not be empty`,
			`19:5: agent "carol" webrtc needs a token, like webrtc: {token: "${ALICE_TOKEN}"}`,
			`19:14: unknown key "tokn" in agent "carol" webrtc (known: token)`,
		}},
		{"agent_no_password", []string{`15:21: agent "bob" sip: username "bob" needs a password`}},
		{"agent_no_sip", []string{
			`14:3: agent "bob" has no phone: give webrtc: {token: SECRET} for the browser softphone, sip: {contact: URI} or sip: {username: NAME, password: SECRET}`,
		}},
		{"agent_bad_contact", []string{
			`15:20: agent "bob" sip contact "bob@192.0.2.10" is not a sip: URI with a host, like sip:carol@192.0.2.10:5060`,
		}},
		{"flow_no_steps", []string{`7:3: flow "sales" has no steps: give at least one, like steps: [{queue: NAME}]`}},
		{"step_two_actions", []string{
			`9:24: flow "sales" step 1 has both "queue" and "play": a step is one action, write each as its own step`,
		}},
		{"step_unreachable", []string{
			`14:9: flow "sales" steps 3 to 4 are never reached: the menu before them always leads elsewhere`,
			`19:9: flow "support" step 2 is never reached: the queue step before it ends the flow`,
		}},
		{"menu_no_options", []string{
			`9:9: flow "sales" step 1 menu has no options: give at least one, like options: {"1": {queue: NAME}}`,
			`14:57: flow "empty_options" step 1 menu options is empty: give at least one, like options: {"1": {queue: NAME}}`,
			`19:11: flow "null_options" step 1 menu options is empty: give at least one, like options: {"1": {queue: NAME}}`,
			`22:9: flow "null_menu" step 1 menu needs a prompt and options, like menu: {prompt: prompts/sales-menu.wav, options: {"1": {queue: NAME}}}`,
		}},
		{"menu_bad_key", []string{
			`13:13: flow "sales" step 1 menu option "12" must be one key of the phone: 0-9, "*" or "#"`,
			`14:13: flow "sales" step 1 menu option "x" must be one key of the phone: 0-9, "*" or "#"`,
			`15:13: duplicate key "1" in flow "sales" step 1 menu options (first on line 12)`,
		}},
		{"menu_bad_values", []string{
			`11:20: flow "sales" step 1 menu timeout must be more than 0`,
			`12:20: flow "sales" step 1 menu retries must be a whole number of 0 or more, got "-1"`,
			`13:11: unknown key "retry" in flow "sales" step 1 menu (known: prompt, timeout, retries, options, default, invalid_prompt)`,
			`19:20: flow "support" step 1 menu timeout must be at most 60s: the caller waits in silence this long on each try`,
			`20:20: flow "support" step 1 menu retries must be at most 10, got 11`,
			`26:20: flow "other" step 1 menu timeout "soon" is not a duration (like 30s, 2m, 1h30m, 90d)`,
			`27:20: flow "other" step 1 menu retries must be a whole number of 0 or more, got "many"`,
		}},
		{"action_two_keys", []string{
			`12:33: flow "sales" step 1 menu option "1" has both "queue" and "flow": a choice leads to one place, give one of queue, flow or hangup`,
			`13:18: flow "sales" step 1 menu option "2" is empty: give one of queue: NAME, flow: NAME or hangup: true`,
			`14:13: flow "sales" step 1 menu option "3" is empty: give one of queue: NAME, flow: NAME or hangup: true`,
			`15:19: unknown key "queu" in flow "sales" step 1 menu option "4" (known: queue, flow, hangup)`,
			`16:18: flow "sales" step 1 menu option "5" must be {queue: NAME}, {flow: NAME} or {hangup: true}, got the string "hangup"`,
			`17:35: flow "sales" step 1 menu default has both "queue" and "hangup": a choice leads to one place, give one of queue, flow or hangup`,
		}},
		{"hangup_false", []string{
			`13:27: flow "sales" step 1 menu option "2": hangup: false leads nowhere: remove it and give queue or flow, or write hangup: true`,
			`14:27: flow "sales" step 1 menu option "3" hangup must be true, got "yes"`,
			`15:27: flow "sales" step 1 menu option "4" hangup must be true, got ""`,
		}},
		// A choice leading to an undefined flow is reported as such, not
		// also as a loop through the menu's own flow.
		{"menu_missing_ref", []string{
			`12:26: flow "sales" step 1 menu option "1" names queue "salse", which is not defined`,
			`13:25: flow "sales" step 1 menu option "2" names flow "suport", which is not defined`,
			`15:27: flow "sales" step 1 menu default names flow "nowhere", which is not defined`,
		}},
		{"flow_loop", []string{
			`7:3: flow "sales" never reaches a queue or a hangup: every choice of its menu, default included, goes round sales → support → sales; lead one to a queue or to hangup: true`,
			`14:3: flow "support" never reaches a queue or a hangup: every choice of its menu, default included, goes round support → sales → support; lead one to a queue or to hangup: true`,
			`23:3: flow "again" never reaches a queue or a hangup: every choice of its menu, default included, goes round again → again; lead one to a queue or to hangup: true`,
			`26:3: flow "into_loop" never reaches a queue or a hangup: every choice of its menu, default included, goes round into_loop → support → sales → support; lead one to a queue or to hangup: true`,
		}},
		{"prompt_missing", []string{
			`9:15: flow "sales" step 1 play: prompt "prompts/welcom.wav": no such file (looked for $TESTDATA/bad/prompts/welcom.wav); did you mean the built-in prompts/welcome.wav?`,
			`10:15: flow "sales" step 2 play: prompt "sounds/hello.wav": no such file (looked for $TESTDATA/bad/sounds/hello.wav)`,
			`11:15: flow "sales" step 3 play: prompt "audio/goodbye.wav": no such file (looked for $TESTDATA/bad/audio/goodbye.wav); the built-in goodbye.wav is used when written prompts/goodbye.wav`,
			`12:15: flow "sales" step 4 play needs a WAV file, like prompts/welcome.wav`,
			`14:19: flow "sales" step 5 menu prompt: prompt "prompts/nope.wav": no such file (looked for $TESTDATA/bad/prompts/nope.wav); built in: prompts/closed.wav, prompts/goodbye.wav, prompts/hold-music.wav, prompts/invalid.wav, prompts/recording-consent.wav, prompts/recording-notice.wav, prompts/sales-menu.wav, prompts/voicemail-greeting.wav, prompts/welcome.wav`,
			`15:27: flow "sales" step 5 menu invalid_prompt: prompt "prompts/Invalid": no such file (looked for $TESTDATA/bad/prompts/Invalid); did you mean the built-in prompts/invalid.wav?`,
		}},
		{"prompt_not_wav", []string{
			`9:15: flow "sales" step 1 play: prompt "../prompts/not-audio.wav": not a WAV file (no RIFF/WAVE header)`,
			`10:15: flow "sales" step 2 play: prompt "../prompts": $TESTDATA/prompts is a directory, not a WAV file`,
			`12:19: flow "sales" step 3 menu prompt: prompt "../prompts/not-audio.wav": not a WAV file (no RIFF/WAVE header)`,
		}},
		{"bad_record", []string{
			`5:44: number "+1 555 010 0001" record must be off, announce or ask, got "yes"`,
			`6:44: number "+1 555 010 0002" record must be a single value, got a list`,
			`9:13: flow "sales" record must be off, announce or ask, got "always"`,
			`12:13: flow "support" record must be off, announce or ask, got "Ask"`,
		}},
		// The ask_prompt given is not replaced by the default when it fails.
		{"bad_recording", []string{
			`17:14: recording retention "-90d" must not be negative`,
			`19:17: recording consent ask_prompt: prompt "prompts/consent.wav": no such file (looked for $TESTDATA/bad/prompts/consent.wav); built in: prompts/closed.wav, prompts/goodbye.wav, prompts/hold-music.wav, prompts/invalid.wav, prompts/recording-consent.wav, prompts/recording-notice.wav, prompts/sales-menu.wav, prompts/voicemail-greeting.wav, prompts/welcome.wav`,
			`20:19: recording consent accept_digit must be one key of the phone: 0-9, "*" or "#", got "12"`,
			`21:14: recording consent timeout must be more than 0`,
			`22:5: unknown key "accept_key" in recording consent (known: announce_prompt, ask_prompt, accept_digit, timeout)`,
		}},
		{"bad_accept_digit", []string{
			`16:14: recording retention "1 year" is not a duration (like 30s, 2m, 1h30m, 90d)`,
			`18:19: recording consent accept_digit must be one key of the phone: 0-9, "*" or "#", got "x"`,
			`19:14: recording consent timeout must be at most 60s: the caller waits in silence this long for a key`,
			`20:22: recording consent announce_prompt: prompt "prompts/recording-notise.wav": no such file (looked for $TESTDATA/bad/prompts/recording-notise.wav); did you mean the built-in prompts/recording-notice.wav?`,
		}},
		{"accept_digit_comment", []string{
			`17:5: recording consent accept_digit needs a key: 0-9, "*" or "#" (quote "*" and "#")`,
			`18:3: unknown key "retain" in recording (known: retention, consent)`,
		}},
		{"no_trunks", []string{
			`1:1: no trunks: at least one trunk must say which carrier addresses may place calls (trunks: {NAME: {allow: [CIDR]}})`,
		}},
		{"duplicate_key", []string{`13:3: duplicate key "sales" in queues (first on line 11)`}},
		{"syntax", []string{`12:1: YAML syntax error: did not find expected ',' or ']'`}},
		{"many", []string{
			`2:3: unknown key "lisen" in sip (known: listen, advertise, tls, digest_algorithms)`,
			`6:16: trunk "carrier" max_calls must be a whole number of 0 or more, got "-1"`,
			`9:3: number "+1 555 01": not a valid E.164 number`,
			`10:29: number "+1 555 010 0002" names flow "nowhere", which is not defined`,
			`14:16: flow "sales" names queue "salse", which is not defined`,
			`17:19: queue "sales" names agent "carl", which is not defined`,
			`20:36: ${BOB_SIP_PASSWORD} is not set`,
			`21:25: pool "web": +15550100001 is also a tracking number under numbers: a number is static or in a pool, not both`,
		}},
		{"pool_numbers", []string{
			`7:9: pool "website" numbers "+1 555 01": not a valid E.164 number`,
			`8:9: pool "website" numbers "1 555 010 0100": must start with +country code`,
			`9:9: pool "website" numbers "+1 555 010 0100..+1 555 010 011": range ends +15550100100 and +1555010011 differ in length: give both in full`,
			`10:9: pool "website" numbers "+1 555 010 0119..+1 555 010 0100": range start +15550100119 is after its end +15550100100`,
			`11:9: pool "website" numbers "+1 555 010 0000..+1 555 011 0000": range of 10001 numbers is longer than 10000: split it, or check its end`,
			`13:9: pool "website" lists +15550100105 twice (and 4 more) (first on line 12)`,
			`14:9: pool "website" lists +15550100110 twice (first on line 13)`,
			`15:9: pool "website" numbers "+1 555 010 0120..+1 555 010 0x": range end "+1 555 010 0x": not a valid E.164 number`,
			`16:8: pool "website" numbers has an empty entry`,
		}},
		{"pool_overlap", []string{
			`9:15: pool "website": +15550100001 is also a tracking number under numbers: a number is static or in a pool, not both`,
			`10:14: pool "website" replace +15550100050 is a number of pool "landing": the number shown by default cannot be one held by visitors`,
			`11:15: pool "website" overflow +15550100005 is one of its own numbers: the overflow is shown when every pool number is held, so it must be another number`,
			`14:15: pool "landing": +15550100010 (and 9 more) is also in pool "website" (line 9): pools must not overlap`,
			`15:14: pool "landing" replace +15550100025 is a number of pool "landing": the number shown by default cannot be one held by visitors`,
			`16:15: pool "landing" overflow +15550100099 is also a tracking number under numbers: its calls would have two attributions`,
			`21:15: pool "shop" overflow +15550100099 is also the overflow of pool "landing" (line 16): its calls could not be told apart`,
			`21:15: pool "shop" overflow +15550100099 is also a tracking number under numbers: its calls would have two attributions`,
		}},
		{"pool_missing", []string{
			`5:3: pool "empty" has no numbers: list them, like numbers: ["+1 555 010 0100..+1 555 010 0119"]`,
			`5:3: pool "empty" has no replace: give the number the site shows by default, which dni.js swaps for a pool number`,
			`5:3: pool "empty" has no overflow: give the number shown when every pool number is held`,
			`5:3: pool "empty" has no flow: say which flow its calls run`,
			`7:14: pool "nothing" numbers is empty: list the numbers shown to visitors`,
			`10:11: pool "nothing" hold must be more than 0: a number is held this long after the visitor's last heartbeat`,
			`11:11: pool "nothing" names flow "nowhere", which is not defined`,
			`16:11: pool "negative" hold "-5m" must not be negative`,
			`18:5: unknown key "sorce" in pool "negative" (known: numbers, replace, overflow, hold, flow, source, medium, campaign)`,
			`20:14: pool "wrong" numbers must be a list, got the string "+1 555 010 0300"`,
			`21:14: pool "wrong" replace "5550100000": must start with +country code`,
			`22:15: pool "wrong" overflow must be a single value, got a list`,
			`23:11: pool "wrong" hold "soon" is not a duration (like 30s, 2m, 1h30m, 90d)`,
			`26:15: ${POOL_NUMBER} is not set`,
			`28:15: ${POOL_OVERFLOW} is not set`,
			`30:9: pool "list" must be a map (key: value), got a list`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := "testdata/bad/" + tt.file + ".yaml"
			c, err := load(t, path, nil)
			if err == nil {
				t.Fatalf("loaded without problems: %+v", c)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			// Missing files are reported with the absolute path looked at.
			testdata := abs(t, "testdata")
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = path + ":" + strings.ReplaceAll(w, "$TESTDATA", testdata)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestReference loads the contract's reference configuration whole.
func TestReference(t *testing.T) {
	env := map[string]string{"CALLSIGN_ADMIN_TOKEN": "t", "BOB_SIP_PASSWORD": "p", "ALICE_TOKEN": "a"}
	c, err := load(t, "testdata/reference.yaml", env)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	if got, want := c.Summary(), "testdata/reference.yaml: ok — 3 numbers, 1 pool (20 numbers), 2 flows, 2 queues, 3 agents, 1 trunk, 2 prompts, recording: 1 flow asks, 1 announces"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	p := c.Pools["website"]
	if p == nil || len(p.Numbers) != 20 || p.Numbers[0] != "+15550100100" || p.Numbers[19] != "+15550100119" ||
		p.Replace != "+15550100000" || p.Overflow != "+15550100199" || p.Hold != 30*time.Minute || p.Flow != "sales" {
		t.Errorf("pool website = %+v", p)
	}

	// Without the environment, every unset variable is reported, and
	// none hides the rest.
	_, err = load(t, "testdata/reference.yaml", nil)
	for _, w := range []string{
		"testdata/reference.yaml:21:16: ${CALLSIGN_ADMIN_TOKEN} is not set",
		"testdata/reference.yaml:87:36: ${BOB_SIP_PASSWORD} is not set",
	} {
		if err == nil || !strings.Contains(err.Error()+"\n", w+"\n") {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "needs a password") {
		t.Errorf("an unset password must not also read as missing:\n%v", err)
	}
}

func TestEnv(t *testing.T) {
	env := map[string]string{
		"HTTP_HOST":        "0.0.0.0",
		"TOKEN_A":          "abc",
		"TOKEN_B":          "",
		"CARRIER_NET":      "203.0.113.0/24",
		"MAX_CALLS":        "42",
		"CAMPAIGN":         "${NOT_EXPANDED_AGAIN}",
		"BOB_SIP_PASSWORD": "pw",
	}
	c := mustLoad(t, "testdata/env.yaml", env)
	checks := []struct {
		name      string
		got, want any
	}{
		{"host:port from a variable", c.HTTP.Listen, "0.0.0.0:8080"},
		{"several variables, empty one, lone $ kept", c.HTTP.AdminToken, "abc- costs $5 and $$ and ${"},
		{"CIDR from a variable", c.Trunks["carrier"].Allow, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
		{"integer from a variable", c.Trunks["carrier"].MaxCalls, 42},
		{"values are not expanded twice", c.Numbers["+15550100001"].Campaign, "${NOT_EXPANDED_AGAIN}"},
		{"password", c.Agents["bob"].SIP.Password, "pw"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}

	delete(env, "MAX_CALLS")
	env["CARRIER_NET"] = "nonsense"
	_, err := load(t, "testdata/env.yaml", env)
	want := "testdata/env.yaml:6:13: bad CIDR \"nonsense\" in trunk \"carrier\" allow\n" +
		"testdata/env.yaml:7:16: ${MAX_CALLS} is not set"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestNormalizeNumber(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"+15550100001", "+15550100001", ""},
		{"+1 555 010 0001", "+15550100001", ""},
		{"+1 (555) 010-0001", "+15550100001", ""},
		{"+44.20.7946.0000", "+442079460000", ""},
		{"+49 30 1234567", "+49301234567", ""},
		{"+12345678", "+12345678", ""},               // 8 digits, the shortest accepted
		{"+123456789012345", "+123456789012345", ""}, // 15 digits, the E.164 maximum
		{"15550100001", "", "must start with +country code"},
		{"(555) 010-0001", "", "must start with +country code"},
		{"+1234567", "", "not a valid E.164 number"},
		{"+1234567890123456", "", "not a valid E.164 number"},
		{"+0 555 010 0001", "", "not a valid E.164 number"},
		{"+1 555 CALL NOW", "", "not a valid E.164 number"},
		{"+1+5550100001", "", "not a valid E.164 number"},
		{"", "", "empty number"},
	}
	for _, tt := range tests {
		got, err := NormalizeNumber(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.err {
			t.Errorf("NormalizeNumber(%q) = %q, %q; want %q, %q", tt.in, got, gotErr, tt.want, tt.err)
		}
	}
}

func TestNormalizeDialed(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means not a number
	}{
		{"15550100001", "+15550100001"},
		{"+15550100001", "+15550100001"},
		{"+1-555-010-0001", "+15550100001"},
		{"%2B15550100001", "+15550100001"},
		{"15550100001;phone-context=example.com", "+15550100001"},
		{"alice", ""},
		{"", ""},
		{"1234567", ""},
		{"05550100001", ""},
		{"++15550100001", ""},
	}
	for _, tt := range tests {
		got, ok := NormalizeDialed(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("NormalizeDialed(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"20s", 20 * time.Second, true},
		{"2m", 2 * time.Minute, true},
		{"90d", 90 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0", 0, true},
		{"20", 0, false},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"-1d", 0, false},
		{"1d-1h", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.HasPrefix(err.Error(), "testdata/does-not-exist.yaml: cannot read config: ") {
		t.Errorf("got %v", err)
	}
}

func TestQueues(t *testing.T) {
	c := mustLoad(t, "testdata/queues.yaml", nil)
	sales, support := c.Queues["sales"], c.Queues["support"]
	if sales.Strategy != StrategyLongestIdle || support.Strategy != StrategyRingAll {
		t.Errorf("strategies %q, %q", sales.Strategy, support.Strategy)
	}
	if !reflect.DeepEqual(sales.Agents, []string{"alice", "bob", "carol"}) {
		t.Errorf("agents %v", sales.Agents)
	}
	if !reflect.DeepEqual(sales.Priority, map[string]int{"alice": 1, "bob": 2}) {
		t.Errorf("priorities %v (carol, without one, is tier 1 and not listed)", sales.Priority)
	}
	if sales.WrapUp != 15*time.Second || sales.MaxWait != 2*time.Minute {
		t.Errorf("wrap_up %s, max_wait %s", sales.WrapUp, sales.MaxWait)
	}
	if sales.HoldMusic == nil || sales.HoldMusic.PCMU == nil {
		t.Error("hold music not loaded")
	}
	if sales.Overflow == nil || *sales.Overflow != (Overflow{After: time.Minute, Queue: "support"}) {
		t.Errorf("overflow %+v", sales.Overflow)
	}
	// no_answer: voicemail without a voicemail block gets the built-in
	// greeting and the default length.
	if sales.NoAnswer != ActionVoicemail || sales.Voicemail == nil || sales.Voicemail.Greeting == nil ||
		sales.Voicemail.MaxLength != DefaultVoicemailMaxLength {
		t.Errorf("sales voicemail %q %+v", sales.NoAnswer, sales.Voicemail)
	}
	if support.NoAnswer != ActionHangup || support.Voicemail == nil || support.Voicemail.MaxLength != 30*time.Second {
		t.Errorf("support voicemail %q %+v", support.NoAnswer, support.Voicemail)
	}
	if support.HoldMusic != nil || support.Overflow != nil || support.Hours != nil {
		t.Error("support has hold music, overflow or hours it was not given")
	}
	if sales.Hours == nil || sales.Hours.String() != "Mon-Fri 09:00-18:00 Europe/Madrid (closed 2026-12-25)" {
		t.Fatalf("hours %v", sales.Hours)
	}
	if sales.AfterHours != ActionVoicemail || sales.AfterHoursPrompt == nil {
		t.Errorf("after hours %q, prompt %v", sales.AfterHours, sales.AfterHoursPrompt)
	}
	madrid, _ := time.LoadLocation("Europe/Madrid")
	for _, tc := range []struct {
		at   time.Time
		open bool
	}{
		{time.Date(2026, 11, 23, 10, 0, 0, 0, madrid), true},  // a Monday
		{time.Date(2026, 11, 22, 10, 0, 0, 0, madrid), false}, // a Sunday
		{time.Date(2026, 12, 25, 10, 0, 0, 0, madrid), false}, // closed
	} {
		if got := sales.Hours.Open(tc.at); got != tc.open {
			t.Errorf("open at %s: %v", tc.at, got)
		}
	}
}

func TestPools(t *testing.T) {
	c := mustLoad(t, "testdata/pools.yaml", map[string]string{"CAMPAIGN": "spring"})
	if got, want := c.Summary(), "testdata/pools.yaml: ok — 1 number, 2 pools (28 numbers), 1 flow, 1 queue, 1 agent, 1 trunk"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	var website []string
	for n := 100; n <= 119; n++ {
		website = append(website, fmt.Sprintf("+155501%05d", n))
	}
	website = append(website, "+15550100150", "+15550100160", "+15550100161")
	want := map[string]*Pool{
		"website": {Name: "website", Numbers: website, Replace: "+15550100000", Overflow: "+15550100199",
			Hold: DefaultPoolHold, Flow: "sales"},
		"landing": {Name: "landing",
			Numbers: []string{"+442079460000", "+442079460001", "+442079460002", "+442079460003", "+442079460004"},
			Replace: "+15550100000", Overflow: "+442079460099", Hold: 2 * time.Hour, Flow: "sales",
			Source: "landing-pages", Medium: "cpc", Campaign: "spring"},
	}
	for name, w := range want {
		if got := c.Pools[name]; !reflect.DeepEqual(got, w) {
			t.Errorf("pool %s:\ngot  %+v\nwant %+v", name, got, w)
		}
	}
	if len(c.Pools) != len(want) {
		t.Errorf("%d pools, want %d", len(c.Pools), len(want))
	}
}

func TestExpandNumbers(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "+1 555 010 0100", want: []string{"+15550100100"}},
		{in: "+1 555 010 0100..+1 555 010 0102", want: []string{"+15550100100", "+15550100101", "+15550100102"}},
		{in: "+1.555.010.0109 .. +1.555.010.0110", want: []string{"+15550100109", "+15550100110"}},
		{in: "+1 555 010 0100..+1 555 010 0100", want: []string{"+15550100100"}},
		{in: "+1 555 019 9999..+1 555 020 0000", want: []string{"+15550199999", "+15550200000"}},
		{in: "+1 555 010 0000..+1 555 010 9999", want: nil, err: ""}, // exactly the limit
		{in: "+1 555 010 0000..+1 555 011 0000", err: "range of 10001 numbers is longer than 10000: split it, or check its end"},
		{in: "+1 555 010 0102..+1 555 010 0100", err: "range start +15550100102 is after its end +15550100100"},
		{in: "+1 555 010 0100..+44 20 7946 0000", err: "range ends +15550100100 and +442079460000 differ in length: give both in full"},
		{in: "..+1 555 010 0100", err: `range start "": empty number`},
		{in: "+1 555 010 0100..", err: `range end "": empty number`},
		{in: "+1 555 010 0100..+1 555 010 0101..+1 555 010 0102", err: `range end "+1 555 010 0101..+1 555 010 0102": not a valid E.164 number`},
	} {
		got, err := ExpandNumbers(tt.in)
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("ExpandNumbers(%q) error %v, want %q", tt.in, err, tt.err)
			}
		case err != nil:
			t.Errorf("ExpandNumbers(%q): %v", tt.in, err)
		case tt.want == nil:
			if len(got) != MaxPoolRange || got[0] != "+15550100000" || got[len(got)-1] != "+15550109999" {
				t.Errorf("ExpandNumbers(%q) = %d numbers from %s", tt.in, len(got), got[0])
			}
		case !reflect.DeepEqual(got, tt.want):
			t.Errorf("ExpandNumbers(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
