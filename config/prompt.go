package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/prompts"
	"gopkg.in/yaml.v3"
)

// builtinPrefix starts the Path of a prompt shipped in the binary.
const builtinPrefix = "builtin:"

// maxPromptFile is the largest file media.LoadPrompt accepts. Prompt files
// are read here instead, once for both codecs, so the bound is kept here.
const maxPromptFile = 128 << 20

// promptFile is one prompt file read during a load: the prompt, or why the
// file cannot be played, for every value that names it.
type promptFile struct {
	p    *Prompt
	fail string
}

// prompt reads the WAV file the value v names and encodes it for each codec
// a call may use; nil when a problem was reported. A relative path is
// relative to the configuration file. prompts/NAME.wav names a built-in
// prompt when no such file is there, so that the example configurations
// run from anywhere; a file of that name, when present, replaces it.
func (l *loader) prompt(v *yaml.Node, label string) *Prompt {
	s, present, ok := l.str(v, label)
	if !ok {
		return nil
	}
	if !present || strings.TrimSpace(s) == "" {
		l.problem(v, "%s needs a WAV file, like prompts/welcome.wav", label)
		return nil
	}
	return l.promptAt(v, s, label)
}

// promptAt reads the prompt file s as prompt does, reporting a problem at
// the node at. A default prompt is not written anywhere, so its problems go
// to the value that made it needed.
func (l *loader) promptAt(at *yaml.Node, s, label string) *Prompt {
	key := resolvePath(l.file, s)
	if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
		name, ok := builtinName(s)
		if !ok {
			l.problem(at, "%s: prompt %q: no such file (looked for %s)%s", label, s, key, builtinHint(s))
			return nil
		}
		key = builtinPrefix + name
	}
	pf, seen := l.prompts[key]
	if !seen {
		pf = readPrompt(key)
		l.prompts[key] = pf
	}
	if pf.fail != "" {
		l.problem(at, "%s: prompt %q: %s", label, s, pf.fail)
		return nil
	}
	return pf.p
}

// readPrompt reads and encodes the prompt at key, a file's absolute path or
// builtinPrefix and the name of a built-in prompt.
func readPrompt(key string) promptFile {
	var data []byte
	if name, ok := strings.CutPrefix(key, builtinPrefix); ok {
		data, _ = prompts.Lookup(name)
	} else {
		fi, err := os.Stat(key)
		switch {
		case err != nil:
			return promptFile{fail: err.Error()}
		case fi.IsDir():
			return promptFile{fail: key + " is a directory, not a WAV file"}
		case fi.Size() > maxPromptFile:
			return promptFile{fail: fmt.Sprintf("file is %d bytes, more than the %d a prompt may have", fi.Size(), maxPromptFile)}
		}
		if data, err = os.ReadFile(key); err != nil {
			return promptFile{fail: err.Error()}
		}
	}
	p := &Prompt{Path: key}
	for _, enc := range []struct {
		codec string
		dst   **media.Prompt
	}{{"PCMU", &p.PCMU}, {"PCMA", &p.PCMA}} {
		mp, err := media.ReadPrompt(key, data, enc.codec)
		if err != nil {
			// The problem names the file as the configuration writes it.
			return promptFile{fail: strings.TrimPrefix(err.Error(), "prompt "+key+": ")}
		}
		*enc.dst = mp
	}
	return promptFile{p: p}
}

// builtinName returns the built-in prompt a path written prompts/NAME.wav
// stands for.
func builtinName(s string) (string, bool) {
	dir, name := splitPrompt(s)
	if dir != "prompts/" || !slices.Contains(prompts.Names(), name) {
		return "", false
	}
	return name, true
}

// splitPrompt splits a relative path as written into its cleaned directory
// and file name; an absolute path has no directory a built-in prompt is in.
func splitPrompt(s string) (dir, name string) {
	dir, name = path.Split(path.Clean(filepath.ToSlash(s)))
	if filepath.IsAbs(s) {
		dir = ""
	}
	return dir, name
}

// builtinHint points a missing prompt at a built-in one, for a path that
// seems to mean one.
func builtinHint(s string) string {
	dir, name := splitPrompt(s)
	names := prompts.Names()
	switch {
	case dir == "prompts/":
		if near := nearest(name, names); near != "" {
			return fmt.Sprintf("; did you mean the built-in prompts/%s?", near)
		}
		return "; built in: prompts/" + strings.Join(names, ", prompts/")
	case slices.Contains(names, name):
		return fmt.Sprintf("; the built-in %s is used when written prompts/%s", name, name)
	}
	return ""
}

// nearest returns the name closest to s when it is close enough to be a
// typo of it: a letter or two wrong, another case, no .wav.
func nearest(s string, names []string) string {
	base := func(n string) string { return strings.TrimSuffix(strings.ToLower(n), ".wav") }
	want := base(s)
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(want, base(n)); d < bestDist && d < len(want) {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
