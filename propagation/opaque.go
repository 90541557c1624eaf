package propagation

// Opaque headers: tracebridge propagates (records and restores) them but does
// not interpret their content, except for the checks below.

// OpaqueHeaders are carried unchanged from an inbound request to the app's
// outbound calls when the app drops them: Envoy's x-request-id, the
// OpenTracing x-ot-span-context (Envoy's LightStep/OT tracers), and AWS
// X-Ray's x-amzn-trace-id.
var OpaqueHeaders = [...]string{HeaderRequestID, HeaderOTSpanContext, HeaderAmznTraceID}

// ForcingHeaders are the request headers with which a client can force Envoy
// to sample: x-envoy-force-trace and x-client-trace-id (Envoy
// source/common/http/conn_manager_utility.cc, mutateTracingRequestHeader,
// which sets the trace reason "forced" or "client" in x-request-id).
var ForcingHeaders = [...]string{HeaderEnvoyForce, HeaderClientTraceID}

// IsEnvoyUUID reports whether v has the shape Envoy's UUID request-id
// extension accepts (source/extensions/request_id/uuid/config.cc): 36
// characters, 8-4-4-4-12 hex digits. Envoy packs its trace reason into the
// version nibble (index 14) of such a value; for any other value it cannot,
// and random sampling then marks the request "no trace" (envoy#12808,
// envoy#16530): an upstream proxy that sends non-UUID request ids silently
// disables sampling.
func IsEnvoyUUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if _, p := hexValCase(c, true); p != OK {
				return false
			}
		}
	}
	return true
}

// EnvoyTraceReason reads the trace reason Envoy packed into a UUID request
// id (index 14: '9' client, 'a' forced, 'b' sampled; anything else none).
func EnvoyTraceReason(v string) string {
	if !IsEnvoyUUID(v) {
		return ""
	}
	switch v[14] {
	case '9':
		return "client"
	case 'a':
		return "forced"
	case 'b':
		return "sampled"
	}
	return ""
}
