package extproc

import (
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	procmodev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebridge/tracebridge/engine"
)

// Attribute names read from ProcessingRequest.attributes (requested by the
// filter's request_attributes).
const (
	attrSourceAddress     = "source.address"
	attrPeerURISAN        = "connection.uri_san_peer_certificate"
	attrListenerDirection = "xds.listener_direction"
)

// procStream is the state of one ext_proc stream (one HTTP request). It is
// pooled: begin and end bracket every use.
type procStream struct {
	s   *Server
	eng *engine.Engine
	st  engine.Stream
	res engine.Result
	h   engine.HeaderList
	hi  engine.IndexedHeaders // h with the engine's presence filter
	req engine.Request

	started   bool // request headers processed
	responded bool // response headers processed
	done      bool // OnDone called
	// valueField: Envoy sent header values in HeaderValue.value (older
	// Envoy, or the send_header_raw_value runtime guard off), so mutations
	// use value too; otherwise raw_value. Envoy reads only one of them,
	// chosen by the same guard.
	valueField bool
	// duplex: body send modes from protocol_config (FULL_DUPLEX_STREAMED needs
	// the body echoed back instead of CONTINUE).
	duplex [2]bool
	peer   peerInfo
	// big: this stream carried large headers; its buffers are not pooled.
	big bool

	// call: what the stream's client span reports (when one was started).
	call engine.SpanCall

	// The two headers replies of the stream, reused by the streams that
	// later get this state from the pool (see reuseReplies).
	reqReply  requestReply
	respReply responseReply
}

// peerInfo is what the request attributes say about the downstream peer.
type peerInfo struct {
	source    netip.Addr
	principal string
	direction engine.Direction
}

func (ps *procStream) begin(s *Server) {
	ps.s = s
	ps.eng = nil
	ps.st.Reset()
	ps.res.Reset()
	// The mutation values may alias the result's buffer (reused by the
	// next message): mutationInto copies them into each reply, so the
	// engine need not copy them into a new string first.
	ps.res.BorrowValues = true
	ps.h = ps.h[:0]
	ps.started, ps.responded, ps.done, ps.valueField, ps.big = false, false, false, false, false
	ps.duplex = [2]bool{}
	ps.peer = peerInfo{}
}

// end releases the engine state exactly once, however the stream ended.
func (ps *procStream) end() {
	defer func() {
		if r := recover(); r != nil {
			ps.s.recovered("done", r)
		}
	}()
	if ps.eng != nil && !ps.done {
		ps.done = true
		ps.s.m.countDecisions(ps.eng.OnDone(&ps.st))
		if cfg := ps.eng.Config().ClientSpans(); cfg != nil && ps.st.ClientSpan.Valid() && ps.s.spans != nil {
			fs := ps.call.Finished(ps.st.ClientSpan, ps.s.nowTime().UnixNano(), "")
			ps.s.spans.add(cfg, &fs)
		}
	}
	ps.call.Reset()
	// Drop references into the request messages before pooling; a stream
	// with large headers gives its buffers back to the GC altogether (the
	// engine's result may hold strings that point into them).
	clear(ps.h[:cap(ps.h)])
	ps.hi = engine.IndexedHeaders{}
	if ps.big || cap(ps.h) > 1024 {
		ps.h = nil
		ps.res = engine.Result{}
	}
	ps.big = false
	// Zeroed here, not when reused, so that pooled state keeps no
	// reference into this stream's messages.
	ps.reqReply = requestReply{}
	ps.respReply = responseReply{}
	ps.req = engine.Request{}
	ps.eng = nil
	ps.peer = peerInfo{}
	ps.st.Reset()
	ps.res.Reset()
}

// safeHandle answers one message; a panic becomes a pass-through reply.
func (ps *procStream) safeHandle(req *extprocv3.ProcessingRequest) (resp *extprocv3.ProcessingResponse, kind int, err error) {
	kind = messageKind(req)
	defer func() {
		if r := recover(); r != nil {
			ps.s.recovered(kindNames[kind], r)
			resp, err = passThrough(req), nil
		}
	}()
	resp, err = ps.handle(req, kind)
	return resp, kind, err
}

func messageKind(req *extprocv3.ProcessingRequest) int {
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return 0
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return 1
	case *extprocv3.ProcessingRequest_RequestBody:
		return 2
	case *extprocv3.ProcessingRequest_ResponseBody:
		return 3
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return 4
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return 5
	}
	return 6
}

func (ps *procStream) handle(req *extprocv3.ProcessingRequest, kind int) (*extprocv3.ProcessingResponse, error) {
	if pc := req.ProtocolConfig; pc != nil {
		ps.duplex[0] = pc.RequestBodyMode == procmodev3.ProcessingMode_FULL_DUPLEX_STREAMED
		ps.duplex[1] = pc.ResponseBodyMode == procmodev3.ProcessingMode_FULL_DUPLEX_STREAMED
	}
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if ps.started {
			ps.s.m.unexpected[kind].Inc()
			return passThrough(req), nil
		}
		return ps.requestHeaders(req, r.RequestHeaders), nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		if !ps.started || ps.responded {
			ps.s.m.unexpected[kind].Inc()
			return passThrough(req), nil
		}
		return ps.responseHeaders(r.ResponseHeaders), nil
	case *extprocv3.ProcessingRequest_RequestBody:
		ps.s.m.unexpected[kind].Inc()
		return bodyReply(r.RequestBody, ps.duplex[0], false), nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		ps.s.m.unexpected[kind].Inc()
		return bodyReply(r.ResponseBody, ps.duplex[1], true), nil
	case *extprocv3.ProcessingRequest_RequestTrailers, *extprocv3.ProcessingRequest_ResponseTrailers:
		ps.s.m.unexpected[kind].Inc()
		return passThrough(req), nil
	}
	if req.ClientWindowUpdate != nil || req.FlowControlInit != nil {
		return nil, nil // flow-control only: nothing to answer
	}
	ps.s.m.unexpected[kind].Inc()
	return nil, errEmptyRequest
}

// passThrough is the CONTINUE reply of a message's kind (nil when the
// message has no kind).
func passThrough(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return bodyReply(r.RequestBody, false, false)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return bodyReply(r.ResponseBody, false, true)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}

// bodyReply leaves a body unchanged. In FULL_DUPLEX_STREAMED mode Envoy
// forwards only what the server streams back, so the chunk is echoed.
func bodyReply(b *extprocv3.HttpBody, duplex, response bool) *extprocv3.ProcessingResponse {
	br := &extprocv3.BodyResponse{}
	if duplex {
		br.Response = &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
			Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{
				Body: b.GetBody(), EndOfStream: b.GetEndOfStream(),
			}},
		}}
	}
	if response {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: br}}
}

// loadHeaders fills ps.h from an Envoy header map. Values come from
// raw_value (current Envoy) or value (older Envoy). raw_value bytes are
// viewed as strings without copying: protobuf decoding gives each message
// its own buffers, nothing here writes to them, and ps.h is cleared when the
// stream ends.
func (ps *procStream) loadHeaders(hm *corev3.HeaderMap) {
	ps.h = ps.h[:0]
	raw, plain := false, false
	size := 0
	for _, hv := range hm.GetHeaders() {
		if hv == nil {
			continue
		}
		name := engine.LowerName(hv.Key)
		var v string
		if len(hv.RawValue) > 0 {
			v = unsafe.String(unsafe.SliceData(hv.RawValue), len(hv.RawValue))
			raw = true
		} else {
			v = hv.Value
			plain = plain || v != ""
		}
		size += len(name) + len(v)
		ps.h = append(ps.h, engine.HeaderPair{Name: name, Value: v})
	}
	ps.hi.Reset(ps.h)
	ps.valueField = plain && !raw
	ps.big = ps.big || size > 64<<10
}

// readPeer reads the request attributes Envoy was asked to send. They are
// keyed by filter name ("envoy.filters.http.ext_proc" or the filter's own
// name), so every entry is searched; the deprecated HttpHeaders.attributes
// is read too.
func readPeer(req *extprocv3.ProcessingRequest, hh *extprocv3.HttpHeaders) peerInfo {
	var p peerInfo
	scan := func(m map[string]*structpb.Struct) {
		for _, st := range m {
			for k, v := range st.GetFields() {
				switch k {
				case attrSourceAddress:
					s := v.GetStringValue()
					if ap, err := netip.ParseAddrPort(s); err == nil {
						p.source = ap.Addr()
					} else if a, err := netip.ParseAddr(s); err == nil {
						p.source = a
					}
				case attrPeerURISAN:
					p.principal = v.GetStringValue()
				case attrListenerDirection:
					switch {
					case v.GetNumberValue() == 1, v.GetStringValue() == "INBOUND", v.GetStringValue() == "1":
						p.direction = engine.Inbound
					case v.GetNumberValue() == 2, v.GetStringValue() == "OUTBOUND", v.GetStringValue() == "2":
						p.direction = engine.Outbound
					}
				}
			}
		}
	}
	scan(req.Attributes)
	//lint:ignore SA1019 Envoy before 1.29 sent the attributes here.
	scan(hh.GetAttributes())
	return p
}

func (ps *procStream) requestHeaders(req *extprocv3.ProcessingRequest, hh *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	s := ps.s
	ps.started = true
	ps.eng = s.eng.Load()
	ps.loadHeaders(hh.GetHeaders())
	ps.peer = readPeer(req, hh)
	dir := ps.peer.direction
	if dir == engine.DirectionUnknown {
		dir = s.dir
	}
	// The request and the header view live in ps (pooled): a HeaderList
	// slice or a fresh Request passed as an interface or pointer would
	// each be a heap allocation per request; *HeaderList is not.
	ps.req = engine.Request{Headers: &ps.hi, Direction: dir, Source: ps.peer.source, PeerPrincipal: ps.peer.principal}
	ps.eng.OnRequest(&ps.st, &ps.req, &ps.res)
	s.m.countDecisions(ps.res.Decisions)
	if ps.st.ClientSpan.Valid() {
		ps.call.Capture(&ps.hi, &ps.res)
	}
	if s.debugEnabled() {
		ps.logDecision("request", dir)
	}
	if r := ps.res.Reply; r != nil {
		return &extprocv3.ProcessingResponse{
			Response:        &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: ps.immediate(r)},
			DynamicMetadata: metadata(ps.res.Tags),
		}
	}
	rr := &ps.reqReply
	r := &rr.headersReply
	r.req.RequestHeaders = &r.hr
	r.pr.Response = &r.req
	r.pr.DynamicMetadata = metadata(ps.res.Tags)
	ps.fill(r, mutationBuf{rr.opts[:], rr.sets[:], rr.raw[:]})
	return &r.pr
}

// headersReply holds the messages of one headers reply, allocated together.
//
// reuseReplies: the replies live in the pooled stream state, so a stream
// sends messages a previous stream sent (each stream answers request and
// response headers at most once each, so a stream never overwrites a reply
// it sent). grpc-go marshals a message inside SendMsg; after it returns,
// only golang.org/x/net/trace (grpc.EnableTracing) and stats handlers may
// still read it ("Tracing libraries and stats handlers may use the message
// lazily", grpc.ServerStream.SendMsg). tracebridge-extproc enables neither;
// a program registering Server on its own grpc.Server must not combine it
// with such a handler. Reusing them saves allocating the reply messages,
// with their protobuf runtime state, on every stream.
type headersReply struct {
	pr   extprocv3.ProcessingResponse
	req  extprocv3.ProcessingResponse_RequestHeaders
	resp extprocv3.ProcessingResponse_ResponseHeaders
	hr   extprocv3.HeadersResponse
	cr   extprocv3.CommonResponse
	hm   extprocv3.HeaderMutation
}

// mutationBuf is room for the set mutations of a reply, so that the usual
// few cost no allocation of their own; when they do not fit they go to the
// heap.
type mutationBuf struct {
	opts []*corev3.HeaderValueOption
	sets []setHeader
	raw  []byte
}

// requestReply is a request headers reply with room for four set mutations
// (W3C and B3 multi are three or four headers).
type requestReply struct {
	headersReply
	opts [4]*corev3.HeaderValueOption
	sets [4]setHeader
	raw  [160]byte
}

// responseReply is a response headers reply with room for one set mutation
// (the server-timing trace metric, 66 bytes alone, or traceresponse).
type responseReply struct {
	headersReply
	opts [1]*corev3.HeaderValueOption
	sets [1]setHeader
	raw  [128]byte
}

// fill sets the header mutation of a headers reply, if there is one.
func (ps *procStream) fill(r *headersReply, buf mutationBuf) {
	if ps.mutationInto(&r.hm, ps.res.Mutations, buf) {
		r.cr.HeaderMutation = &r.hm
		r.hr.Response = &r.cr
	}
}

func (ps *procStream) responseHeaders(hh *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	ps.responded = true
	ps.loadHeaders(hh.GetHeaders())
	if ps.st.ClientSpan.Valid() {
		if v, _ := ps.hi.Get(":status"); v != "" {
			ps.call.Status, _ = strconv.Atoi(v)
		}
	}
	ps.eng.OnResponse(&ps.st, &ps.hi, &ps.res)
	ps.s.m.countDecisions(ps.res.Decisions)
	rr := &ps.respReply
	r := &rr.headersReply
	r.resp.ResponseHeaders = &r.hr
	r.pr.Response = &r.resp
	ps.fill(r, mutationBuf{rr.opts[:], rr.sets[:], rr.raw[:]})
	return &r.pr
}

func (ps *procStream) logDecision(phase string, dir engine.Direction) {
	var names []string
	ps.res.Decisions.Each(func(d engine.Decision) { names = append(names, d.String()) })
	attrs := []any{"phase", phase, "direction", dir.String(), "decisions", names}
	if ps.peer.source.IsValid() {
		attrs = append(attrs, "source", ps.peer.source.String())
	}
	if ps.peer.principal != "" {
		attrs = append(attrs, "peer_principal", ps.peer.principal)
	}
	if ps.res.Context.Valid() {
		attrs = append(attrs, "trace_id", ps.res.Context.TraceID.String())
	}
	for _, p := range ps.res.Problems {
		attrs = append(attrs, slog.Group("problem", "header", p.Header, "reason", p.Problem.String()))
	}
	ps.s.log.Debug("decision", attrs...)
}

// mutation converts engine mutations into an ext_proc HeaderMutation,
// leaving out what Envoy's default mutation_rules would refuse (and what no
// rule allows: invalid names or values make Envoy fail the whole reply).
func (ps *procStream) mutation(muts []engine.Mutation) *extprocv3.HeaderMutation {
	hm := new(extprocv3.HeaderMutation)
	if !ps.mutationInto(hm, muts, mutationBuf{}) {
		return nil
	}
	return hm
}

// mutationInto fills hm and reports whether it holds any mutation. The
// messages and value bytes go into buf when they fit.
func (ps *procStream) mutationInto(hm *extprocv3.HeaderMutation, muts []engine.Mutation, buf mutationBuf) bool {
	if len(muts) == 0 {
		return false
	}
	// Count first, then allocate the messages and the value bytes in one
	// block each: a reply has a handful of mutations, built per request.
	nset, nrem, nbytes := 0, 0, 0
	for i := range muts {
		m := &muts[i]
		if forbidden(m.Name, ps.s.envoyH) {
			ps.s.m.droppedForbid.Inc()
			m.Name = ""
			continue
		}
		if !validName(m.Name) || m.Op == engine.OpSet && !validValue(m.Value) {
			ps.s.m.droppedInvalid.Inc()
			m.Name = ""
			continue
		}
		if m.Op == engine.OpSet {
			nset++
			nbytes += len(m.Value)
		} else {
			nrem++
		}
	}
	if nset+nrem == 0 {
		return false
	}
	if nrem > 0 {
		hm.RemoveHeaders = make([]string, 0, nrem)
	}
	var (
		sets []setHeader
		raw  []byte
	)
	switch {
	case nset == 0:
	case nset <= len(buf.sets) && nbytes <= len(buf.raw):
		hm.SetHeaders = buf.opts[:0:nset]
		sets = buf.sets[:nset]
		if !ps.valueField {
			raw = buf.raw[:0:nbytes]
		}
	default:
		hm.SetHeaders = make([]*corev3.HeaderValueOption, 0, nset)
		sets = make([]setHeader, nset)
		if !ps.valueField {
			raw = make([]byte, 0, nbytes)
		}
	}
	for i := range muts {
		m := &muts[i]
		if m.Name == "" {
			continue
		}
		if m.Op == engine.OpRemove {
			hm.RemoveHeaders = append(hm.RemoveHeaders, m.Name)
			continue
		}
		k := len(hm.SetHeaders)
		hv := &sets[k].hv
		hv.Key = m.Name
		if ps.valueField {
			// value is a proto3 string: invalid UTF-8 would fail the
			// whole reply's marshalling. A copy: m.Value may be borrowed
			// from the result, which the next message reuses.
			hv.Value = strings.Clone(strings.ToValidUTF8(m.Value, "\uFFFD"))
		} else {
			off := len(raw)
			raw = append(raw, m.Value...)
			hv.RawValue = raw[off:len(raw):len(raw)]
		}
		o := &sets[k].opt
		o.Header = hv
		o.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		hm.SetHeaders = append(hm.SetHeaders, o)
	}
	return true
}

// setHeader keeps a HeaderValueOption and its HeaderValue together, so a
// reply's sets cost one allocation.
type setHeader struct {
	opt corev3.HeaderValueOption
	hv  corev3.HeaderValue
}

// forbidden: pseudo-headers, host, and x-envoy-* (unless allowEnvoy), which
// Envoy's default HeaderMutationRules refuse to set or remove (:authority,
// :scheme and :method by name; every ":" header may never be removed).
func forbidden(name string, allowEnvoy bool) bool {
	return name == "" || name[0] == ':' || name == "host" || !allowEnvoy && strings.HasPrefix(name, "x-envoy-")
}

// validName: a lower-case RFC 9110 token.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validValue: what Envoy's header value check accepts (no NUL, CR or LF).
func validValue(s string) bool {
	return strings.IndexByte(s, 0) < 0 && strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, '\n') < 0
}

// immediate turns the engine's local reply into an ImmediateResponse.
func (ps *procStream) immediate(r *engine.Reply) *extprocv3.ImmediateResponse {
	ir := &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(r.Status)},
		Body:    []byte(r.Body),
		Details: "tracebridge_rejected",
	}
	if r.ContentType != "" {
		ir.Headers = ps.mutation([]engine.Mutation{{Op: engine.OpSet, Name: "content-type", Value: r.ContentType}})
	}
	return ir
}

// metadata returns the tags as dynamic metadata under the tracebridge
// namespace. Every tag goes there, whatever its sinks: dynamic metadata is
// the only per-request channel from ext_proc to Envoy's tracer and access
// log (ext_proc cannot write filter state), it is invisible until the filter
// lists the namespace in receiving_namespaces, and it lets one look at what
// the engine computed. Header and baggage sinks are applied as mutations.
func metadata(tags []engine.Tag) *structpb.Struct {
	var fields map[string]*structpb.Value
	for i := range tags {
		t := &tags[i]
		if fields == nil {
			fields = make(map[string]*structpb.Value, len(tags))
		}
		fields[t.Name] = structpb.NewStringValue(t.Value)
	}
	if fields == nil {
		return nil
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		engine.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: fields}),
	}}
}
