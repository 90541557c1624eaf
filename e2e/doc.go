// Package e2e holds tracebridge's end-to-end tests: the bookinfo-shaped mesh
// of e2e/sim/demo behind sidecars and a gateway of the e2e/sim/envoysim harness,
// hosting the real compiled module and the real tracebridge-extproc, with
// spans reported to a real Jaeger v2 (e2e/sim/backend) and checked through its
// query API; and the same scenarios against a real Envoy when an envoy
// binary is on PATH. See README.md.
package e2e
