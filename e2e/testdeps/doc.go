// Package testdeps starts the real external programs that tracebridge's
// end-to-end tests depend on, and stops them when the test ends.
//
//   - [Jaeger] builds (once, cached in bin/tools/) and runs Jaeger v2 with
//     in-memory storage, the Zipkin and OTLP receivers and the query API, every
//     listener bound to 127.0.0.1 on a free port; [QueryClient] reads traces
//     back through Jaeger's HTTP query API.
//   - [Redis] runs Debian's redis-server (installing the package with apt-get
//     when it is missing) on a free 127.0.0.1 port, and can stop and restart it
//     on the same port to simulate an outage.
//   - [Tool], [Hey], [Ghz], [Kubeconform] and [Staticcheck] return the paths of
//     the tools pinned in buildtools/go.mod, built by buildtools/build.sh.
//
// A dependency that cannot be provided fails the test, because CI is meant to
// really run these tests. Set TRACEBRIDGE_ALLOW_SKIP=1 to skip such tests
// instead (for a quick local run on a machine without the tools).
//
// Other environment variables:
//
//	TRACEBRIDGE_ROOT        repository root (default: found from the working directory)
//	TRACEBRIDGE_<NAME>_BIN  use this binary for tool NAME (e.g. TRACEBRIDGE_JAEGER_BIN)
//	                        instead of building it
//	TRACEBRIDGE_REDIS_SERVER  path of redis-server (default: looked up on PATH)
//
// Every helper takes a [testing.TB] and registers its cleanup with t.Cleanup.
// The child processes get SIGKILL if the test binary dies (Linux), so a
// timed-out test leaves nothing listening.
package testdeps
