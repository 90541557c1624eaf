// Package backend starts the external programs the demo and the end-to-end
// tests send spans to or keep state in, each bound to 127.0.0.1 only, and
// stops them again:
//
//   - [StartJaeger] runs Jaeger v2 with in-memory storage, the Zipkin and
//     OTLP receivers and the query API on free ports; [QueryClient] reads
//     traces back through Jaeger's HTTP query API.
//   - [StartRedis] runs redis-server on a free port, and can stop and
//     restart it on the same port to simulate an outage.
//
// The child processes get SIGKILL when their parent dies (Linux), so a
// crashed demo or timed-out test leaves nothing listening.
package backend
