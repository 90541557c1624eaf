package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// runInProcess starts Run with the given flags and returns its addresses;
// the server is drained when the test ends.
func runInProcess(t *testing.T, args ...string) (grpcAddr, adminAddr string, log *syncBuffer) {
	t.Helper()
	cfg, err := ParseFlags(append([]string{"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--drain-timeout", "2s"}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, log, func(g, a string) { addrs <- [2]string{g, a} })
	}()
	select {
	case a := <-addrs:
		grpcAddr, adminAddr = a[0], a[1]
	case err := <-done:
		t.Fatalf("Run: %v\n%s", err, log.String())
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not become ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return grpcAddr, adminAddr, log
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// oneExchange runs request headers through a connection and returns the
// forwarded traceparent.
func oneExchange(t *testing.T, cc *grpc.ClientConn, kv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := extprocv3.NewExternalProcessorClient(cc).Process(ctx)
	if err != nil {
		return "", err
	}
	in := hmap(kv...)
	if err := s.Send(reqHeadersMsg(in, nil)); err != nil {
		return "", err
	}
	r, err := s.Recv()
	if err != nil {
		return "", err
	}
	out := applyMutation(t, headerPairs(in), r.GetRequestHeaders().GetResponse().GetHeaderMutation())
	s.CloseSend()
	s.Recv()
	v, _ := headerValue(out, "x-b3-traceid")
	return v, nil
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunAdminAndHealth: /metrics, /healthz, /readyz and the gRPC health
// service of a running server.
func TestRunAdminAndHealth(t *testing.T) {
	g, a, _ := runInProcess(t)
	cc := dial(t, g, nil)
	if _, err := oneExchange(t, cc, "traceparent", validTP); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"", extprocv3.ExternalProcessor_ServiceDesc.ServiceName} {
		r, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, r, err)
		}
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		if code, body := httpGet(t, "http://"+a+path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	_, body := httpGet(t, "http://"+a+"/metrics")
	for _, name := range []string{
		`tracebridge_extproc_decisions_total{decision="translated"} 1`,
		"tracebridge_extproc_streams_active 0",
		`tracebridge_extproc_request_duration_seconds_count{kind="request_headers"} 1`,
		`tracebridge_extproc_store_errors_total{op="get"} 0`,
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
}

// TestRunPolicyFileReload: a changed policy file is picked up without a
// restart; an invalid one is logged with its field path and the old policy
// stays.
func TestRunPolicyFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(path, []byte(`{"emit":["w3c"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	g, _, log := runInProcess(t, "--config", path)
	cc := dial(t, g, nil)
	b3 := func() bool {
		v, err := oneExchange(t, cc, "traceparent", validTP)
		if err != nil {
			t.Fatal(err)
		}
		return v != ""
	}
	if b3() {
		t.Fatal("b3 emitted under a w3c-only policy")
	}
	// Replace the file the way editors and ConfigMap volumes do: write a
	// new file, rename it over the old.
	replace := func(content string) {
		tmp := filepath.Join(dir, ".policy.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	replace(`{"emit":["w3c","b3multi"]}`)
	waitFor(t, b3)
	replace(`{"emit":["w3c","b3multi"],"correlation":{"ttl":5}}`)
	waitFor(t, func() bool { return strings.Contains(log.String(), "policy reload failed") })
	if !strings.Contains(log.String(), `"field":"correlation.ttl"`) {
		t.Errorf("reload failure does not name the field path:\n%s", log.String())
	}
	if !b3() {
		t.Error("the previous policy was not kept after an invalid reload")
	}
}

// TestRunTLS: TLS, and mTLS refusing clients without a certificate.
func TestRunTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, dir, "server", true)
	cliCert, cliKey := ca.issue(t, dir, "client", false)
	caPath := filepath.Join(dir, "ca.pem")
	os.WriteFile(caPath, ca.pem, 0o644)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	clientPair, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("tls", func(t *testing.T) {
		g, _, _ := runInProcess(t, "--tls-cert", srvCert, "--tls-key", srvKey)
		if _, err := oneExchange(t, dial(t, g, credentials.NewTLS(&tls.Config{RootCAs: roots})), "traceparent", validTP); err != nil {
			t.Errorf("TLS client: %v", err)
		}
		if _, err := oneExchange(t, dial(t, g, nil), "traceparent", validTP); err == nil {
			t.Error("plaintext client accepted by a TLS server")
		}
	})
	t.Run("mtls", func(t *testing.T) {
		g, _, _ := runInProcess(t, "--tls-cert", srvCert, "--tls-key", srvKey, "--client-ca", caPath)
		if _, err := oneExchange(t, dial(t, g, credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}})), "traceparent", validTP); err != nil {
			t.Errorf("client with a certificate: %v", err)
		}
		if _, err := oneExchange(t, dial(t, g, credentials.NewTLS(&tls.Config{RootCAs: roots})), "traceparent", validTP); err == nil {
			t.Error("client without a certificate accepted")
		}
	})
}

// TestParseFlags: defaults and the errors a typo gets.
func TestParseFlags(t *testing.T) {
	c, err := ParseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9002" || c.AdminListen != "127.0.0.1:9003" || c.Store != "memory" || c.Direction != "inbound" || c.GCPercent != DefaultGCPercent || c.gcPercentSet {
		t.Errorf("defaults %+v", c)
	}
	if c, err := ParseFlags([]string{"--gc-percent", "50"}, io.Discard); err != nil || c.GCPercent != 50 || !c.gcPercentSet {
		t.Errorf("--gc-percent 50: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "a"}, "go together"},
		{[]string{"--client-ca", "a"}, "needs --tls-cert"},
		{[]string{"--store", "postgres://x"}, "--store"},
		{[]string{"--direction", "sideways"}, "--direction"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--gc-percent", "-2"}, "--gc-percent"},
		{[]string{"--span-collector", "outbound|9411||zipkin.istio-system.svc.cluster.local"}, "--span-collector"},
	} {
		if _, err := ParseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %s", tc.args, err, tc.want)
		}
	}
}

// TestApplyGCPercent: an explicit --gc-percent wins, then GOGC from the
// environment, then the default.
func TestApplyGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		name     string
		env      string
		explicit bool
		want     int
	}{
		{"default", "", false, 400},
		{"GOGC set", "150", false, 123},
		{"flag over GOGC", "150", true, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.env)
			debug.SetGCPercent(123) // GOGC is read at start-up: stands for it
			ApplyGCPercent(400, tc.explicit)
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GC percent %d, want %d", got, tc.want)
			}
		})
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tracebridge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a leaf certificate and key signed by the CA.
func (ca *testCA) issue(t *testing.T, dir, name string, server bool) (certPath, keyPath string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certPath, keyPath
}
