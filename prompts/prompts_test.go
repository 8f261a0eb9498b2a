package prompts

import (
	"bytes"
	"os"
	"slices"
	"testing"
)

// Every file shipped in this directory is built in, byte for byte, and a
// caller cannot change the copy the next caller gets.
func TestEveryShippedPromptIsBuiltIn(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names() = %v, not sorted", names)
	}
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var wavs []string
	for _, f := range files {
		if !f.IsDir() && len(f.Name()) > 4 && f.Name()[len(f.Name())-4:] == ".wav" {
			wavs = append(wavs, f.Name())
		}
	}
	if !slices.Equal(names, wavs) {
		t.Fatalf("built in %v, shipped %v", names, wavs)
	}
	for _, n := range names {
		want, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := Lookup(n)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("Lookup(%q) = %d bytes, %v; want the file's %d bytes", n, len(got), ok, len(want))
			continue
		}
		got[0] ^= 0xff
		if again, _ := Lookup(n); !bytes.Equal(again, want) {
			t.Errorf("changing what Lookup(%q) returned changed the built-in prompt", n)
		}
	}
	for _, bad := range []string{"missing.wav", "../config/types.go", "", "README.md"} {
		if _, ok := Lookup(bad); ok {
			t.Errorf("Lookup(%q) found something", bad)
		}
	}
}
