package envoysim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebridge/tracebridge/engine"
)

// ExtProcFilter models envoy.filters.http.ext_proc
// (source/extensions/filters/http/ext_proc/ext_proc.cc, processor_state.cc,
// mutation_utils.cc) with the configuration tracebridge ships: processing
// mode request and response headers SEND, bodies NONE, trailers SKIP;
// request_attributes source.address and xds.listener_direction; default
// mutation_rules; metadata_options.receiving_namespaces; failure_mode_allow;
// message_timeout. One gRPC stream per HTTP request.
type ExtProcFilter struct {
	conn *grpc.ClientConn
	cli  extprocv3.ExternalProcessorClient
	// MessageTimeout bounds each answer (default 200 ms).
	MessageTimeout time.Duration
	// FailureModeAllow: on a gRPC error or timeout the request continues
	// unchanged; otherwise Envoy answers 500.
	FailureModeAllow bool
	// ReceivingNamespaces lists the dynamic-metadata namespaces accepted
	// from the server.
	ReceivingNamespaces []string
	// AllowEnvoy is mutation_rules.allow_envoy (x-envoy-* mutations).
	AllowEnvoy bool

	errors atomic.Int64
}

// NewExtProcFilter connects (lazily, as Envoy's gRPC client does) to addr.
func NewExtProcFilter(addr string) (*ExtProcFilter, error) {
	// Envoy's async gRPC client opens a connection when a stream needs one;
	// a short reconnect backoff models that (gRPC-Go's default waits up to
	// 2 minutes after a server restart).
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 500 * time.Millisecond}, MinConnectTimeout: time.Second}))
	if err != nil {
		return nil, err
	}
	return &ExtProcFilter{conn: conn, cli: extprocv3.NewExternalProcessorClient(conn), MessageTimeout: 200 * time.Millisecond,
		FailureModeAllow: true, ReceivingNamespaces: []string{engine.MetadataNamespace}}, nil
}

// Close closes the gRPC connection.
func (f *ExtProcFilter) Close() error { return f.conn.Close() }

// Errors counts streams that failed (timeouts, gRPC errors).
func (f *ExtProcFilter) Errors() int64 { return f.errors.Load() }

// Name implements Filter.
func (f *ExtProcFilter) Name() string { return "envoy.filters.http.ext_proc" }

// NewStream implements Filter.
func (f *ExtProcFilter) NewStream(info *StreamInfo) FilterStream {
	return &extProcStream{f: f, info: info}
}

type extProcStream struct {
	f      *ExtProcFilter
	info   *StreamInfo
	ctx    context.Context
	cancel context.CancelFunc
	stream extprocv3.ExternalProcessor_ProcessClient
	failed bool
	reply  bool
}

// exchange sends one message and waits for the answer within
// message_timeout (ext_proc.cc: the message timer; on expiry the stream is
// closed and the failure mode applies).
func (s *extProcStream) exchange(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	type result struct {
		resp *extprocv3.ProcessingResponse
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		if s.stream == nil {
			st, err := s.f.cli.Process(s.ctx)
			if err != nil {
				ch <- result{nil, err}
				return
			}
			s.stream = st
		}
		if err := s.stream.Send(req); err != nil {
			ch <- result{nil, err}
			return
		}
		resp, err := s.stream.Recv()
		ch <- result{resp, err}
	}()
	t := time.NewTimer(s.f.MessageTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-t.C:
		s.cancel()
		<-ch
		return nil, errors.New("ext_proc message timeout")
	}
}

func (s *extProcStream) onError(err error) *LocalReply {
	s.failed = true
	s.f.errors.Add(1)
	s.cancel()
	if s.f.FailureModeAllow {
		s.info.AddDecision("ext_proc:failure_mode_allow")
		return nil
	}
	s.info.AddDecision("ext_proc:error")
	return &LocalReply{Status: 500, Body: "ext_proc error: " + err.Error(), Details: "ext_proc_error_gRPC_error"}
}

func headerMap(h *Headers) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for _, kv := range h.kv {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	return hm
}

// DecodeHeaders sends request_headers with the request attributes.
func (s *extProcStream) DecodeHeaders(h *Headers) *LocalReply {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	attrs := map[string]*structpb.Value{}
	if s.info.Source != "" {
		attrs["source.address"] = structpb.NewStringValue(s.info.Source)
	}
	if s.info.Direction != Unspecified {
		attrs["xds.listener_direction"] = structpb.NewNumberValue(float64(s.info.Direction))
	}
	req := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(h), EndOfStream: true}},
		Attributes: map[string]*structpb.Struct{
			"envoy.filters.http.ext_proc": {Fields: attrs},
		},
	}
	resp, err := s.exchange(req)
	if err != nil {
		return s.onError(err)
	}
	s.acceptMetadata(resp)
	switch r := resp.Response.(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		s.apply(r.RequestHeaders.GetResponse(), h)
		s.info.AddDecision("ext_proc:continue")
		return nil
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		ir := r.ImmediateResponse
		s.reply = true
		lr := &LocalReply{Status: int(ir.GetStatus().GetCode()), Body: string(ir.GetBody()), Details: ir.GetDetails()}
		if lr.Status == 0 {
			lr.Status = 200
		}
		for _, o := range ir.GetHeaders().GetSetHeaders() {
			lr.Headers = append(lr.Headers, [2]string{strings.ToLower(o.GetHeader().GetKey()), headerValue(o.GetHeader())})
		}
		s.info.AddDecision(fmt.Sprintf("ext_proc:immediate_response(%d)", lr.Status))
		s.cancel()
		return lr
	default:
		// A response to the wrong message is a protocol error
		// (ext_proc.cc: spurious message → stream error).
		return s.onError(fmt.Errorf("unexpected ext_proc response %T", resp.Response))
	}
}

// EncodeHeaders sends response_headers.
func (s *extProcStream) EncodeHeaders(h *Headers) {
	if s.failed || s.reply || s.stream == nil {
		return
	}
	resp, err := s.exchange(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(h), EndOfStream: false}},
	})
	if err != nil {
		s.failed = true
		s.f.errors.Add(1)
		s.cancel()
		return
	}
	s.acceptMetadata(resp)
	if r, ok := resp.Response.(*extprocv3.ProcessingResponse_ResponseHeaders); ok {
		s.apply(r.ResponseHeaders.GetResponse(), h)
	}
}

// OnDone closes the gRPC stream.
func (s *extProcStream) OnDone() {
	if s.stream != nil && !s.failed {
		_ = s.stream.CloseSend()
	}
	if s.cancel != nil {
		s.cancel()
	}
}

// acceptMetadata keeps only namespaces listed in
// metadata_options.receiving_namespaces.untyped (ext_proc.cc
// setDynamicMetadata; docs/ENVOY.md §6).
func (s *extProcStream) acceptMetadata(resp *extprocv3.ProcessingResponse) {
	for ns, v := range resp.GetDynamicMetadata().GetFields() {
		accepted := false
		for _, r := range s.f.ReceivingNamespaces {
			if r == ns {
				accepted = true
			}
		}
		if !accepted || v.GetStructValue() == nil {
			continue
		}
		fields := map[string]any{}
		for k, fv := range v.GetStructValue().GetFields() {
			fields[k] = fv.AsInterface()
		}
		s.info.SetMetadata(ns, fields)
	}
}

func headerValue(hv *corev3.HeaderValue) string {
	if len(hv.GetRawValue()) > 0 {
		return string(hv.GetRawValue())
	}
	return hv.GetValue()
}

// allowed models the default HeaderMutationRules
// (source/extensions/filters/common/mutation_rules/mutation_rules.cc): no
// changes to :authority/host, :scheme, :method, x-envoy-* (unless
// allow_envoy), nor to other pseudo-headers; a disallowed mutation is
// ignored (disallow_is_error false).
func (f *ExtProcFilter) allowed(name string) bool {
	n := strings.ToLower(name)
	switch {
	case n == "host" || n == ":authority" || n == ":scheme" || n == ":method":
		return false
	case strings.HasPrefix(n, "x-envoy-"):
		return f.AllowEnvoy
	case strings.HasPrefix(n, ":") && n != ":path" && n != ":status":
		return false
	}
	return n != ""
}

// apply applies a CommonResponse's header mutation (mutation_utils.cc
// applyHeaderMutations): removals first, then set_headers with their
// append action.
func (s *extProcStream) apply(cr *extprocv3.CommonResponse, h *Headers) {
	hm := cr.GetHeaderMutation()
	if hm == nil {
		return
	}
	for _, name := range hm.GetRemoveHeaders() {
		if s.f.allowed(name) && !strings.HasPrefix(name, ":") {
			h.Del(name)
		}
	}
	for _, o := range hm.GetSetHeaders() {
		hv := o.GetHeader()
		name := strings.ToLower(hv.GetKey())
		if !s.f.allowed(name) {
			s.info.AddDecision("ext_proc:mutation_rejected(" + name + ")")
			continue
		}
		v := headerValue(hv)
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			// The default action: Envoy still honours the deprecated
			// append field when it is set to false (mutation_utils.cc).
			//lint:ignore SA1019 modelling Envoy's handling of the deprecated field
			if o.GetAppend() != nil && !o.GetAppend().GetValue() {
				h.Set(name, v)
			} else {
				h.Add(name, v)
			}
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if _, ok := h.Lookup(name); !ok {
				h.Add(name, v)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.Set(name, v)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if _, ok := h.Lookup(name); ok {
				h.Set(name, v)
			}
		}
	}
}
