package engine

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The engine reads JSON here only (policy documents, JWT claims), with its
// own decoder rather than encoding/json: the policy decoder (policydecode.go)
// names the field path of every refusal, which this decoder makes possible
// (a syntax error names the path of the value it is in; an out-of-range
// number is kept for the field to refuse), and encoding/json with the
// reflect it brings would take the wasm module past its size goal.

// decodeJSON parses one JSON document (RFC 8259) into the generic tree
// encoding/json produces for an `any`: map[string]any, []any, string,
// float64, bool and nil. A later duplicate key wins and invalid UTF-8 in
// strings becomes U+FFFD, as with encoding/json. JWT payloads are read so.
func decodeJSON(data []byte) (any, error) {
	return jsonDecoder{data: data, maxDepth: maxJSONDepth}.document()
}

// decodePolicyJSON parses a policy document, stricter than decodeJSON: a
// key given twice in an object is an error, nesting is capped at
// maxPolicyDepth, and a number out of float64's range is kept as a
// BadNumber. Errors are *jsonSyntaxError with the path of the value.
func decodePolicyJSON(data []byte) (any, error) {
	return jsonDecoder{data: data, maxDepth: maxPolicyDepth, policy: true}.document()
}

func (d jsonDecoder) document() (any, error) {
	d.space()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.space()
	if d.pos < len(d.data) {
		return nil, d.errorf("unexpected data after the top-level value")
	}
	return v, nil
}

// maxJSONDepth bounds nesting, as encoding/json does (10000).
const maxJSONDepth = 10000

type jsonDecoder struct {
	data     []byte
	pos      int
	maxDepth int
	policy   bool
}

// jsonSyntaxError is a syntax error and where it is: the byte offset, and
// the path of the value being read (segments innermost first, added as the
// error travels out of the objects and arrays around it).
type jsonSyntaxError struct {
	msg    string
	offset int
	line   string
	rev    []string
}

func (e *jsonSyntaxError) Error() string {
	return e.msg + " at offset " + strconv.Itoa(e.offset)
}

// path is the field path of the value the error is in ("" at the top).
func (e *jsonSyntaxError) path() string {
	p := ""
	for i := len(e.rev) - 1; i >= 0; i-- {
		if seg := e.rev[i]; seg[0] == '[' {
			p += seg
		} else {
			p = joinPath(p, printableKey(seg[1:]))
		}
	}
	return p
}

// in adds the key (as ".key") or "[index]" of the value the error travels
// out of.
func in(err error, seg string) error {
	if se, ok := err.(*jsonSyntaxError); ok {
		se.rev = append(se.rev, seg)
	}
	return err
}

func (d *jsonDecoder) errorf(msg string) error {
	return &jsonSyntaxError{msg: msg, offset: d.pos, line: position(d.data, d.pos)}
}

// unexpected describes the byte at the current position.
func (d *jsonDecoder) unexpected(context string) error {
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input " + context)
	}
	return d.errorf("invalid character " + strconv.QuoteRune(rune(d.data[d.pos])) + " " + context)
}

func (d *jsonDecoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value(depth int) (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.unexpected("looking for beginning of value")
	}
	c := d.data[d.pos]
	if (c == '{' || c == '[') && depth >= d.maxDepth {
		return nil, d.errorf("nested more than " + strconv.Itoa(d.maxDepth) + " deep")
	}
	switch {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		return d.string()
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, d.unexpected("looking for beginning of value")
}

func (d *jsonDecoder) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if d.pos >= len(d.data) || d.data[d.pos] != lit[i] {
			return d.unexpected("in literal " + lit)
		}
		d.pos++
	}
	return nil
}

func (d *jsonDecoder) object(depth int) (any, error) {
	d.pos++ // '{'
	obj := map[string]any{}
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return obj, nil
	}
	for {
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.unexpected("looking for beginning of object key string")
		}
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.unexpected("after object key")
		}
		d.pos++
		d.space()
		if _, dup := obj[k]; dup && d.policy {
			return nil, in(d.errorf("key given twice in one object"), "."+k)
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, in(err, "."+k)
		}
		obj[k] = v
		d.space()
		if d.pos < len(d.data) {
			switch d.data[d.pos] {
			case ',':
				d.pos++
				d.space()
				continue
			case '}':
				d.pos++
				return obj, nil
			}
		}
		return nil, d.unexpected("after object key:value pair")
	}
}

func (d *jsonDecoder) array(depth int) (any, error) {
	d.pos++ // '['
	arr := []any{}
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return arr, nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, in(err, "["+strconv.Itoa(len(arr))+"]")
		}
		arr = append(arr, v)
		d.space()
		if d.pos < len(d.data) {
			switch d.data[d.pos] {
			case ',':
				d.pos++
				d.space()
				continue
			case ']':
				d.pos++
				return arr, nil
			}
		}
		return nil, d.unexpected("after array element")
	}
}

func (d *jsonDecoder) number() (any, error) {
	start := d.pos
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		return nil, d.unexpected("in numeric literal")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return nil, d.unexpected("after decimal point in numeric literal")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, d.unexpected("in exponent of numeric literal")
		}
	}
	lit := string(d.data[start:d.pos])
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && d.policy {
		return BadNumber(lit), nil
	}
	if err != nil {
		d.pos = start
		return nil, d.errorf("number " + lit + " is out of range")
	}
	return f, nil
}

func (d *jsonDecoder) string() (string, error) {
	d.pos++ // '"'
	start := d.pos
	// Fast path: no escapes, valid UTF-8, no control characters.
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c == '"' {
			s := d.data[start:d.pos]
			d.pos++
			return string(s), nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.pos++
	}
	buf := append([]byte(nil), d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c < 0x20:
			return "", d.unexpected("in string literal")
		case c == '\\':
			d.pos++
			if d.pos >= len(d.data) {
				return "", d.unexpected("in string escape code")
			}
			e := d.data[d.pos]
			d.pos++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", d.unexpected("in \\u hexadecimal character escape")
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate pairs with a following \u low one;
					// anything else is a lone surrogate: U+FFFD.
					save := d.pos
					if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
						d.pos += 2
						if r2, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								buf = utf8.AppendRune(buf, dec)
								continue
							}
						}
					}
					d.pos = save
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.pos--
				return "", d.unexpected("in string escape code")
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.pos++
		default:
			r, n := utf8.DecodeRune(d.data[d.pos:])
			buf = utf8.AppendRune(buf, r) // RuneError for invalid bytes
			d.pos += n
		}
	}
	return "", d.unexpected("in string literal")
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.pos += 4
	return r, true
}
