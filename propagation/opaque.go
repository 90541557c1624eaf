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

// IsEnvoyUUID reports whether Envoy's UUID request-id extension can pack a
// trace reason into v (source/extensions/request_id/uuid/config.cc,
// getTraceReason and setTraceReason): Envoy checks only that the value is
// UUID_LENGTH (36) bytes long, not that it is hex in the 8-4-4-4-12 shape
// (see IsUUIDShape for that). It then reads and writes the character at
// index 14 (TRACE_BYTE_POSITION, the UUID version nibble). For a value of any
// other length it can do neither: the trace reason is "not traceable" and
// random sampling never marks the request, so an upstream proxy that sends
// non-UUID request ids (nginx's 32 hex digits, for example) silently
// disables sampling (envoy#12808, envoy#16530).
func IsEnvoyUUID(v string) bool { return len(v) == envoyUUIDLength }

// envoyUUIDLength is Random::RandomGeneratorImpl::UUID_LENGTH in Envoy.
const envoyUUIDLength = 36

// IsUUIDShape reports whether v is a UUID in its text form: 36 characters,
// 8-4-4-4-12 hex digits of either case (RFC 9562 §4). Envoy does not check
// this (see IsEnvoyUUID); it is for callers that want a well-formed id.
func IsUUIDShape(v string) bool {
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

// EnvoyTraceReason reads the trace reason Envoy packed into a request id of
// UUID length, at index 14 (source/extensions/request_id/uuid/config.h:
// TRACE_SAMPLED '9', TRACE_FORCED 'a', TRACE_CLIENT 'b'; anything else, such
// as '4' of a fresh UUIDv4, is "not traceable" and returns "").
func EnvoyTraceReason(v string) string {
	if !IsEnvoyUUID(v) {
		return ""
	}
	switch v[14] {
	case '9':
		return "sampled"
	case 'a':
		return "forced"
	case 'b':
		return "client"
	}
	return ""
}
