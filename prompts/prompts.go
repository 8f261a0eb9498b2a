// Package prompts holds the default prompts, built into the binary so that
// a configuration naming prompts/welcome.wav runs from any directory, with
// no files installed next to it.
package prompts

import "embed"

//go:embed *.wav
var files embed.FS

// Lookup returns the WAV file of the built-in prompt name, a base file name
// such as "welcome.wav". The bytes are a copy the caller may keep or
// change.
func Lookup(name string) ([]byte, bool) {
	data, err := files.ReadFile(name)
	if err != nil {
		return nil, false
	}
	return data, true
}

// Names lists the built-in prompts, sorted, as Lookup takes them.
func Names() []string {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}
