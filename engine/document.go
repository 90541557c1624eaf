package engine

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Bounds of a policy document, checked before the document is parsed (its
// size) or before a value is used (strings, lists), so that a hostile or
// mistaken document is refused before it costs memory: every adapter loads
// it in a proxy or a server that must not be taken down by its own
// configuration. docs/POLICY.md states them.
const (
	// MaxPolicyBytes caps the document, in bytes.
	MaxPolicyBytes = 256 << 10
	// MaxStringBytes caps every string value (a header name, a secret, a
	// literal tag value; tags[].from.path.regex has its own, smaller cap).
	MaxStringBytes = 4096
	// MaxListEntries caps every list (tags, CIDRs, header names, ...).
	MaxListEntries = 1024
	// maxPolicyDepth caps nesting: the policy itself nests four deep.
	maxPolicyDepth = 32
)

// BadNumber is a number a policy document holds that no float64 can: an
// out-of-range literal such as 1e400, or YAML's .inf and .nan. The decoders
// keep it, as written, in place of the number, so that the field it is given
// to refuses it naming its path, like any other value of the wrong kind.
type BadNumber string

// PolicyText applies the rules every adapter (the wasm filter's
// pluginConfig, the ext_proc service's --config, the CLI) applies to a
// policy document before parsing it, and returns the document to parse with
// a UTF-8 byte-order mark and surrounding white space removed. It returns
// nil when the document is the zero-config default: empty, white space only,
// or null.
//
// The rules: at most MaxPolicyBytes; UTF-8 (RFC 8259 §8.1 requires UTF-8 for
// JSON exchanged between systems, so UTF-16 and UTF-32 are refused, by their
// byte-order mark or by the NUL bytes they put between ASCII characters; a
// UTF-8 byte-order mark is skipped, as RFC 8259 §8.1 lets parsers do and
// YAML 1.2 §5.2 requires).
func PolicyText(data []byte) ([]byte, error) {
	if len(data) > MaxPolicyBytes {
		return nil, documentError("is " + strconv.Itoa(len(data)) + " bytes; at most " + strconv.Itoa(MaxPolicyBytes) + " are accepted")
	}
	switch {
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}), bytes.HasPrefix(data, []byte{0xff, 0xfe}),
		bytes.HasPrefix(data, []byte{0, 0, 0xfe, 0xff}):
		return nil, documentError("is UTF-16 or UTF-32 (it starts with that byte-order mark); save it as UTF-8")
	}
	data = bytes.TrimPrefix(data, []byte{0xef, 0xbb, 0xbf})
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, documentError("has a NUL byte at " + position(data, i) + " (UTF-16 or UTF-32 text?); save it as UTF-8")
	}
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return nil, documentError("is not UTF-8: invalid byte at " + position(data, i))
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	return data, nil
}

// documentError is a refusal of the whole document (it has no field path).
func documentError(msg string) error {
	return &ConfigError{Fields: []FieldError{{Msg: "the policy document " + msg}}}
}

// position describes byte offset i of data as a line and column (counted in
// bytes, from 1) for messages.
func position(data []byte, i int) string {
	line := 1 + bytes.Count(data[:i], []byte{'\n'})
	col := i + 1
	if nl := bytes.LastIndexByte(data[:i], '\n'); nl >= 0 {
		col = i - nl
	}
	return "line " + strconv.Itoa(line) + ", column " + strconv.Itoa(col)
}
