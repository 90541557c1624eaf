package propagation

import "testing"

func TestIsEnvoyUUID(t *testing.T) {
	tests := []struct {
		in          string
		envoy, uuid bool
		reason      string
	}{
		{"968ea8f8-3806-45c9-8228-8d3dde5df3b4", true, true, ""}, // fresh UUIDv4: not traceable
		{"950284c4-3c92-9062-b836-57996687deda", true, true, "sampled"},
		{"968ea8f8-3806-a5c9-8228-8d3dde5df3b4", true, true, "forced"},
		{"968ea8f8-3806-b5c9-8228-8d3dde5df3b4", true, true, "client"},
		{"968EA8F8-3806-B5C9-8228-8D3DDE5DF3B4", true, true, ""}, // Envoy compares 'b', not 'B'
		{"018f6b1c-7c3a-7d4e-9f10-123456789abc", true, true, ""}, // UUIDv7
		// 36 bytes but not a UUID: Envoy still packs and reads index 14.
		{"xxxxxxxx-xxxx-9xxx-xxxx-xxxxxxxxxxxx", true, false, "sampled"},
		{"968ea8f8x3806x45c9x8228x8d3dde5df3b4", true, false, ""},
		{"968ea8f8-3806-45c9-8228-8d3dde5df3bg", true, false, ""},
		// Any other length: no trace reason (envoy#12808).
		{"60e82827a270070cfbda38c6f30f478a", false, false, ""}, // nginx $request_id
		{"968ea8f8-3806-95c9-8228-8d3dde5df3b", false, false, ""},
		{"968ea8f8-3806-95c9-8228-8d3dde5df3b45", false, false, ""},
		{"{968ea8f8-3806-95c9-8228-8d3dde5df3b4}", false, false, ""},
		{"", false, false, ""},
	}
	for _, tt := range tests {
		if got := IsEnvoyUUID(tt.in); got != tt.envoy {
			t.Errorf("IsEnvoyUUID(%q) = %v, want %v", tt.in, got, tt.envoy)
		}
		if got := IsUUIDShape(tt.in); got != tt.uuid {
			t.Errorf("IsUUIDShape(%q) = %v, want %v", tt.in, got, tt.uuid)
		}
		if got := EnvoyTraceReason(tt.in); got != tt.reason {
			t.Errorf("EnvoyTraceReason(%q) = %q, want %q", tt.in, got, tt.reason)
		}
	}
}

func TestOpaqueLists(t *testing.T) {
	want := map[string]bool{HeaderRequestID: true, HeaderOTSpanContext: true, HeaderAmznTraceID: true}
	for _, h := range OpaqueHeaders {
		if !want[h] {
			t.Errorf("unexpected opaque header %q", h)
		}
		delete(want, h)
	}
	if len(want) != 0 {
		t.Errorf("missing opaque headers %v", want)
	}
	if ForcingHeaders != [...]string{"x-envoy-force-trace", "x-client-trace-id"} {
		t.Errorf("ForcingHeaders = %v", ForcingHeaders)
	}
}
