// Package codec is the gRPC codec of tracebridge-extproc: gRPC's proto
// codec, except that replies are marshalled by go-control-plane's generated
// vtprotobuf code when the binary is built with the vtprotobuf tag, and that
// the headers ProcessingRequests are decoded by a decoder that copies the
// message once (decode.go). The messages on the wire are the same either way.
package codec

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	// Registers the proto codec this one falls back to.
	_ "google.golang.org/grpc/encoding/proto"
)

// vtMarshaler is the code protoc-gen-go-vtproto generates. go-control-plane
// ships it for the ext_proc messages behind the vtprotobuf build tag (the
// Makefile builds tracebridge-extproc with it); without the tag no message
// has it and the codec is gRPC's own.
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict(dAtA []byte) (int, error)
}

// codec is gRPC's proto codec, except that messages with generated
// vtprotobuf code are marshalled by it (about a third of the time of the
// reflection-based marshaller for a reply with header mutations and
// dynamic metadata), and that the headers messages of ext_proc are
// decoded by decodeRequest (go-control-plane generates no UnmarshalVT).
// Everything else is gRPC's.
type codec struct {
	proto encoding.CodecV2
}

// ServerOption makes a gRPC server use the codec: tracebridge-extproc sets
// it, and the load benchmark can give it to the no-op baseline as well.
func ServerOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(New())
}

// New returns the codec.
func New() encoding.CodecV2 { return newCodec() }

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

// Name is the content-subtype: the codec speaks the same protobuf as
// gRPC's, so it keeps its name.
func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMarshaler)
	if !ok {
		return c.proto.Marshal(v)
	}
	size := m.SizeVT()
	// Small messages in their own slice, larger ones in a pooled buffer
	// that gRPC frees once written, as gRPC's own codec does.
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVTStrict(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVTStrict((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	*buf = (*buf)[:size]
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*extprocv3.ProcessingRequest); ok && notBodyOrTrailers(data) {
		// The message's own copy (gRPC reuses data's buffers), which the
		// decoded strings and bytes point into. Like proto.Unmarshal,
		// decoding replaces whatever m held.
		b := data.Materialize()
		proto.Reset(m)
		if decodeRequest(b, m) {
			return nil
		}
		proto.Reset(m)
	}
	return c.proto.Unmarshal(data, v)
}

// notBodyOrTrailers: the message does not start with a body or trailers
// (fields 4 to 7). Envoy writes fields in field-number order, so its body
// messages (which may be megabytes) and trailers are not copied for a
// decoder that would hand them to proto.Unmarshal anyway. (Go's protobuf
// writes oneof fields after the others, so the first field of a headers
// message may also be attributes or protocol_config.)
func notBodyOrTrailers(data mem.BufferSlice) bool {
	for _, buf := range data {
		if b := buf.ReadOnlyData(); len(b) > 0 {
			num, typ := protowire.DecodeTag(uint64(b[0]))
			return !(num >= 4 && num <= 7 && typ == protowire.BytesType)
		}
	}
	return false
}
