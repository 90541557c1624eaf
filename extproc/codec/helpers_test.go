package codec

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// The request attributes the ext_proc filter is asked to send.
const (
	attrSourceAddress     = "source.address"
	attrPeerURISAN        = "connection.uri_san_peer_certificate"
	attrListenerDirection = "xds.listener_direction"
)

// hmap builds an Envoy header map the way current Envoy sends it (raw_value).
func hmap(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}

// hmapValue builds a header map the way older Envoy sends it (value).
func hmapValue(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], Value: kv[i+1]})
	}
	return hm
}

// attrs builds ProcessingRequest.attributes as Envoy does: keyed by the
// filter name, one Struct field per requested attribute.
func attrs(kv ...any) map[string]*structpb.Struct {
	fields := map[string]*structpb.Value{}
	for i := 0; i+1 < len(kv); i += 2 {
		v, err := structpb.NewValue(kv[i+1])
		if err != nil {
			panic(err)
		}
		fields[kv[i].(string)] = v
	}
	return map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: fields}}
}

func reqHeadersMsg(hm *corev3.HeaderMap, a map[string]*structpb.Struct) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hm}},
		Attributes: a,
	}
}

func respHeadersMsg(hm *corev3.HeaderMap) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: hm}},
	}
}
