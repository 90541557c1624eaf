package app

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"

	"github.com/tracebridge/tracebridge/extproc"
	"github.com/tracebridge/tracebridge/extproc/codec"
)

// TestStreamLimitPerConnection: a raw HTTP/2 client that grants the server
// no flow-control window and opens more streams than allowed gets the limit
// in the server's SETTINGS and REFUSED_STREAM for every stream beyond it,
// while the streams within it are served.
func TestStreamLimitPerConnection(t *testing.T) {
	lim := DefaultLimits()
	srv, err := extproc.NewServer(nil, extproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append(lim.ServerOptions(), codec.ServerOption())...)
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()

	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	var advertised uint32
	for got := false; !got; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			advertised, _ = sf.Value(http2.SettingMaxConcurrentStreams)
			got = true
		}
	}
	if advertised != lim.MaxConcurrentStreams {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", advertised, lim.MaxConcurrentStreams)
	}
	if err := fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}

	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", "extproc"},
		{":path", "/envoy.service.ext_proc.v3.ExternalProcessor/Process"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	const extra = 5
	n := int(lim.MaxConcurrentStreams) + extra
	for i := 0; i < n; i++ {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}

	refused := map[uint32]bool{}
	for len(refused) < extra {
		f, err := fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%d of %d streams beyond the limit refused before the deadline: %v", len(refused), extra, refused)
			}
			t.Fatal(err)
		}
		rf, ok := f.(*http2.RSTStreamFrame)
		if !ok {
			continue
		}
		if rf.ErrCode != http2.ErrCodeRefusedStream {
			t.Errorf("stream %d reset with %v, want REFUSED_STREAM", rf.StreamID, rf.ErrCode)
		}
		if rf.StreamID <= uint32(2*lim.MaxConcurrentStreams) {
			t.Errorf("stream %d (within the limit) refused", rf.StreamID)
		}
		refused[rf.StreamID] = true
	}
	waitFor(t, func() bool { return srv.OpenStreams() == int64(lim.MaxConcurrentStreams) })
}

// TestLimitFlags: the limits have flags, and a value out of range is refused
// at start with the flag's name.
func TestLimitFlags(t *testing.T) {
	c, err := ParseFlags([]string{"--max-concurrent-streams", "7", "--stream-window-bytes", "131072", "--conn-window-bytes", "262144",
		"--max-header-list-bytes", "8192", "--max-message-bytes", "65536", "--keepalive-time", "1m", "--keepalive-timeout", "5s", "--keepalive-min-time", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{MaxMessageBytes: 65536, MaxConcurrentStreams: 7, StreamWindowBytes: 131072, ConnWindowBytes: 262144,
		MaxHeaderListBytes: 8192, KeepaliveTime: time.Minute, KeepaliveTimeout: 5 * time.Second, KeepaliveMinTime: 2 * time.Second}
	if c.Limits != want {
		t.Errorf("limits %+v, want %+v", c.Limits, want)
	}
	if c, err := ParseFlags(nil, io.Discard); err != nil || c.Limits != DefaultLimits() {
		t.Errorf("defaults %+v, %v", c.Limits, err)
	}
	for _, tc := range []struct{ flag, val string }{
		{"--max-concurrent-streams", "0"},
		{"--max-concurrent-streams", "4294967296"},
		{"--max-concurrent-streams", "10001"},
		{"--stream-window-bytes", "65535"},
		{"--stream-window-bytes", "4294967296"},
		{"--conn-window-bytes", "1024"},
		{"--max-header-list-bytes", "100"},
		{"--max-message-bytes", "0"},
		{"--max-message-bytes", "1073741824"},
		{"--keepalive-time", "10ms"},
		{"--keepalive-timeout", "0s"},
		{"--keepalive-min-time", "2h"},
	} {
		_, err := ParseFlags([]string{tc.flag, tc.val}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s %s: %v, want an error naming the flag", tc.flag, tc.val, err)
		}
	}
}
