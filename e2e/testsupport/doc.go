// Package testsupport is what tracebridge's tests need around the programs
// of e2e/sim/backend and the tools of buildtools/: each helper takes a
// [testing.TB], fails (or skips) the test when its dependency cannot be
// provided, and registers its cleanup with t.Cleanup. Nothing here is
// linked into a shipped binary.
//
//   - [Jaeger] builds (once, cached in bin/tools/) and runs Jaeger v2.
//   - [Redis] runs redis-server (`make test-deps` installs it; tests never
//     install packages) and can stop and restart it on the same port.
//   - [Tool], [Hey], [Ghz], [Kubeconform] and [Staticcheck] return the paths of
//     the tools pinned in buildtools/go.mod, built by buildtools/build.sh.
//   - [RepoRoot] and [FreePorts] wrap internal/repo and the backend's port
//     finder for tests.
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
package testsupport
