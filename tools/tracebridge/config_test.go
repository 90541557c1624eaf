package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/extproc/cmd/tracebridge-extproc/app"
	"github.com/tracebridge/tracebridge/wasm-filter/plugin"
)

// TestCLIAndServersAgree: `tracebridge config validate`, tracebridge-extproc
// --config and (for JSON, the only form Istio passes) the wasm filter's
// pluginConfig accept the same documents and refuse the others with the
// same first error.
func TestCLIAndServersAgree(t *testing.T) {
	var utf16Doc []byte
	utf16Doc = append(utf16Doc, 0xff, 0xfe)
	for _, u := range utf16.Encode([]rune(`{"invalid":"reject"}`)) {
		utf16Doc = append(utf16Doc, byte(u), byte(u>>8))
	}
	cases := []struct {
		name string
		doc  []byte
		json bool   // a form the wasm filter is given too
		err  string // first error; "" when accepted
	}{
		{"JSON", []byte(`{"invalid":"reject"}`), true, ""},
		{"YAML", []byte("invalid: reject\ntags:\n- name: t\n  from: {header: x-t}\n  to: [header]\n"), false, ""},
		{"null", []byte("null"), true, ""},
		{"UTF-8 byte-order mark", []byte("\xef\xbb\xbf{\"invalid\":\"reject\"}"), true, ""},
		{"UTF-16", utf16Doc, true, "the policy document is UTF-16 or UTF-32 (it starts with that byte-order mark); save it as UTF-8"},
		{"number out of range", []byte(`{"correlation":{"capacity":1e400}}`), true, "correlation.capacity: must be a whole number, got number 1e400 (out of range)"},
		{"YAML .inf", []byte("correlation:\n  capacity: .inf\n"), false, "correlation.capacity: must be a whole number, got number .inf (out of range)"},
		{"YAML .nan", []byte("correlation:\n  capacity: .nan\n"), false, "correlation.capacity: must be a whole number, got number .nan (out of range)"},
		{"key given twice", []byte(`{"invalid":"reject","invalid":"pass"}`), true, "invalid: not valid JSON at line 1, column 31: key given twice in one object"},
		{"semantic error", []byte("correlation:\n  ttl: thirty\n"), false, `correlation.ttl: must be a positive duration like "30s", got "thirty"`},
		{"long regex", []byte(`{"tags":[{"name":"t","from":{"path":{"regex":"` + strings.Repeat("a", 4000) + `"}},"to":["header"]}]}`), true, "tags[0].from.path.regex: must be at most 1024 bytes, got 4000"},
		{"document too large", []byte(`{"tags":[{"name":"t","from":{"path":{"regex":"` + strings.Repeat("a", 4<<20) + `"}},"to":["header"]}]}`), true, "the policy document is more than 262144 bytes"},
	}
	dir := t.TempDir()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "policy"+string(rune('a'+i)))
			if err := os.WriteFile(path, tc.doc, 0o644); err != nil {
				t.Fatal(err)
			}

			var stdout, stderr bytes.Buffer
			code := run([]string{"config", "validate", path}, &stdout, &stderr)
			if tc.err == "" {
				if code != 0 {
					t.Errorf("config validate: exit %d: %s", code, stderr.String())
				}
			} else if code != 1 || !strings.Contains(stderr.String(), tc.err) {
				t.Errorf("config validate: exit %d, stderr %q; want exit 1 naming %q", code, stderr.String(), tc.err)
			}

			p, _, err := app.LoadPolicy(path)
			if err == nil {
				_, err = engine.Compile(p, nil)
			}
			checkFirstError(t, "tracebridge-extproc --config", err, tc.err)

			if !tc.json {
				return
			}
			doc := tc.doc
			if len(doc) > engine.MaxPolicyBytes {
				// The host hands the filter the whole document; the
				// filter's own check reports its exact size.
				doc = doc[:engine.MaxPolicyBytes+1]
			}
			host, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption().WithVMContext(plugin.NewVMContext()).WithPluginConfiguration(doc))
			defer reset()
			status := host.StartPlugin()
			logs := strings.Join(host.GetCriticalLogs(), "\n")
			want := tc.err
			if want == "the policy document is more than 262144 bytes" {
				want = "the policy document is 262145 bytes; at most 262144 are accepted"
			}
			if want == "" && status != types.OnPluginStartStatusOK {
				t.Errorf("wasm pluginConfig refused: %s", logs)
			}
			if want != "" && (status != types.OnPluginStartStatusFailed || !strings.Contains(logs, "invalid policy: "+want)) {
				t.Errorf("wasm pluginConfig: status %v, logs %q; want refused naming %q", status, logs, want)
			}
		})
	}
}

func checkFirstError(t *testing.T, what string, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("%s: refused: %v", what, err)
		}
		return
	}
	ce, ok := err.(*engine.ConfigError)
	if !ok || len(ce.Fields) == 0 {
		t.Errorf("%s: %v, want a policy error naming %q", what, err, want)
		return
	}
	if got := ce.Fields[0].Error(); got != want {
		t.Errorf("%s: first error\n got %s\nwant %s", what, got, want)
	}
}
