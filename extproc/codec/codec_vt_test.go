//go:build vtprotobuf

package codec

import extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

// With the vtprotobuf tag the replies must take the generated marshaller:
// a go-control-plane upgrade that dropped it would otherwise silently fall
// back to the slower one.
var _ vtMarshaler = (*extprocv3.ProcessingResponse)(nil)
