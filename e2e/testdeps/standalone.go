package testdeps

import (
	"os"
	"strings"
)

// StartJaegerIn runs the Jaeger binary bin like [Jaeger] does, outside a
// test: its configuration and log go to dir, and the caller stops it with
// Stop. Used by `tracebridge demo` (make demo JAEGER=1).
func StartJaegerIn(bin, dir string) (*JaegerInstance, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var j *JaegerInstance
		if j, err = launchJaeger(bin, dir); err == nil {
			return j, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}
