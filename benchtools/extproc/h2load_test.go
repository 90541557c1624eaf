package main

import (
	"io"
	"net"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tracebridge/tracebridge/extproc"
	"github.com/tracebridge/tracebridge/extproc/cmd/tracebridge-extproc/app"
)

// failingServer ends every stream with an error after the first reply.
type failingServer struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (failingServer) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	if _, err := s.Recv(); err != nil {
		return err
	}
	s.Send(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}})
	return status.Error(codes.Internal, "failing on purpose")
}

// wrongKindServer answers request headers with a response-headers reply.
type wrongKindServer struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (wrongKindServer) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		if _, err := s.Recv(); err != nil {
			return nil
		}
		if err := s.Send(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}); err != nil {
			return err
		}
	}
}

func serve(t *testing.T, srv extprocv3.ExternalProcessorServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(app.ServerOptions(8 << 20)...)
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// TestDrivers runs both load generators against real gRPC servers: every
// stream must complete against a correct server and fail against a broken
// one.
func TestDrivers(t *testing.T) {
	tb, err := extproc.NewServer(nil, extproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	servers := []struct {
		name string
		srv  extprocv3.ExternalProcessorServer
		ok   bool
	}{
		{"noop", noopServer{}, true},
		{"tracebridge", tb, true},
		{"failing", failingServer{}, false},
		{"wrong-kind", wrongKindServer{}, false},
	}
	for _, s := range servers {
		addr := serve(t, s.srv)
		for _, client := range []string{"h2", "grpc"} {
			t.Run(s.name+"/"+client, func(t *testing.T) {
				d, err := newDriver(client, addr, 2)
				if err != nil {
					t.Fatal(err)
				}
				defer d.close()
				closed := d.closedLoop(4, 200*time.Millisecond)
				open := d.openLoop(500, 200*time.Millisecond)
				if client == "grpc" && s.name == "wrong-kind" {
					return // grpc-go's client does not check the reply's kind
				}
				if s.ok {
					if closed.errors != 0 || closed.n == 0 {
						t.Errorf("closed loop: %d streams, %d errors", closed.n, closed.errors)
					}
					if open.errors != 0 || open.n != 100 {
						t.Errorf("open loop: %d streams, %d errors, want 100 and 0", open.n, open.errors)
					}
					return
				}
				if closed.n != 0 || closed.errors == 0 {
					t.Errorf("closed loop against a broken server: %d streams ok, %d errors", closed.n, closed.errors)
				}
				if open.n != 0 || open.errors != 100 {
					t.Errorf("open loop against a broken server: %d streams ok, %d errors, want 0 and 100", open.n, open.errors)
				}
			})
		}
	}
}

func TestHasField(t *testing.T) {
	marshal := func(m *extprocv3.ProcessingResponse) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	reqReply := marshal(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
		Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: []string{"x-b3-sampled"}}}}}})
	respReply := marshal(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}})
	for _, c := range []struct {
		name string
		b    []byte
		num  int
		want bool
	}{
		{"request reply, field 1", reqReply, 1, true},
		{"request reply, field 2", reqReply, 2, false},
		{"response reply, field 2", respReply, 2, true},
		{"empty message", nil, 1, false},
		{"truncated", reqReply[:len(reqReply)-1], 1, true}, // the tag is read before the truncated value
		{"bad tag", []byte{0x80}, 1, false},
	} {
		if got := hasField(c.b, protowire.Number(c.num)); got != c.want {
			t.Errorf("%s: hasField = %v, want %v", c.name, got, c.want)
		}
	}
}

// FuzzHasField: never panics, and finds the reply kind wherever protobuf
// itself decodes one.
func FuzzHasField(f *testing.F) {
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{0x12, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		h1, h2 := hasField(b, 1), hasField(b, 2)
		var m extprocv3.ProcessingResponse
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		if m.GetRequestHeaders() != nil && !h1 || m.GetResponseHeaders() != nil && !h2 {
			t.Fatalf("%x: decoded %T, hasField 1=%v 2=%v", b, m.Response, h1, h2)
		}
	})
}

// TestFloor drives the floor's echo server: every request completes; a
// server that answers with bytes nobody asked for fails them all.
func TestFloor(t *testing.T) {
	for _, c := range []struct {
		name    string
		handler func(net.Conn)
		ok      bool
	}{
		{"echo", nil, true},
		{"garbage", func(nc net.Conn) {
			buf := make([]byte, floorMsgSize)
			for {
				if _, err := io.ReadFull(nc, buf); err != nil {
					return
				}
				clear(buf)
				if _, err := nc.Write(buf); err != nil {
					return
				}
			}
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer lis.Close()
			if c.handler == nil {
				go echoServe(lis)
			} else {
				go func() {
					for {
						nc, err := lis.Accept()
						if err != nil {
							return
						}
						go func() { defer nc.Close(); c.handler(nc) }()
					}
				}()
			}
			d, err := newDriver("tcp", lis.Addr().String(), 2)
			if err != nil {
				t.Fatal(err)
			}
			defer d.close()
			closed := d.closedLoop(4, 200*time.Millisecond)
			open := d.openLoop(500, 200*time.Millisecond)
			if c.ok {
				if closed.errors != 0 || closed.n == 0 || open.errors != 0 || open.n != 100 {
					t.Errorf("closed loop %d ok, %d errors; open loop %d ok, %d errors (want 100, 0)", closed.n, closed.errors, open.n, open.errors)
				}
				return
			}
			if closed.n != 0 || closed.errors == 0 || open.n != 0 || open.errors != 100 {
				t.Errorf("against a broken server: closed loop %d ok, %d errors; open loop %d ok, %d errors (want 0, 100)", closed.n, closed.errors, open.n, open.errors)
			}
		})
	}
}
