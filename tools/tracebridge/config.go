package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/engine/policyfile"
)

func runConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "default":
		out, err := json.MarshalIndent(engine.DefaultPolicy(), "", "  ")
		if err != nil {
			fmt.Fprintln(stderr, "tracebridge:", err)
			return 1
		}
		fmt.Fprintln(stdout, string(out))
		return 0
	case "validate":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: tracebridge config validate FILE")
			return 2
		}
		cfg, err := loadPolicyFile(args[1])
		if err != nil {
			reportConfigError(stderr, args[1], err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: valid policy: %s\n", args[1], summarize(cfg))
		return 0
	}
	fmt.Fprintf(stderr, "tracebridge config: unknown subcommand %q\n", args[0])
	return 2
}

// loadPolicyFile reads a JSON or YAML policy the way tracebridge-extproc
// reads its --config (policyfile) and compiles it with the process
// environment (for env tag sources and secretEnv).
func loadPolicyFile(path string) (*engine.Config, error) {
	data, err := policyfile.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return policyfile.Load(data, os.Getenv)
}

func reportConfigError(w io.Writer, file string, err error) {
	if ce, ok := err.(*engine.ConfigError); ok {
		fmt.Fprintf(w, "%s: invalid policy (%d problem(s)):\n", file, len(ce.Fields)+ce.Omitted)
		for _, f := range ce.Fields {
			fmt.Fprintf(w, "  %s\n", f.Error())
		}
		if ce.Omitted > 0 {
			fmt.Fprintf(w, "  and %d more\n", ce.Omitted)
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", file, err)
}

func summarize(c *engine.Config) string {
	p := c.Policy
	d := engine.DefaultPolicy()
	or := func(v, def []string) string {
		if v == nil {
			v = def
		}
		return strings.Join(v, ",")
	}
	invalid := p.Invalid
	if invalid == "" {
		invalid = d.Invalid
	}
	strategies := or(p.Correlation.Strategies, d.Correlation.Strategies)
	if strategies == "" {
		strategies = "off"
	}
	return fmt.Sprintf("read=%s emit=%s invalid=%s correlation=%s ttl=%s capacity=%d tags=%d",
		or(p.Read, d.Read), or(p.Emit, d.Emit), invalid, strategies, c.TTL, c.Capacity, len(p.Tags))
}

func runDebugToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("debug-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secretEnv := fs.String("secret-env", "TRACEBRIDGE_DEBUG_SECRET", "environment variable holding the HMAC secret")
	ttl := fs.Duration("ttl", 0, "validity of the token, e.g. 10m (required; at most the policy's trust.debugToken.maxTTL)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	secret := os.Getenv(*secretEnv)
	if len(secret) < 16 {
		fmt.Fprintf(stderr, "tracebridge debug-token: $%s must hold a secret of at least 16 characters\n", *secretEnv)
		return 1
	}
	if *ttl <= 0 {
		fmt.Fprintln(stderr, "tracebridge debug-token: --ttl is required, e.g. --ttl 10m")
		return 2
	}
	fmt.Fprintln(stdout, engine.MakeDebugToken([]byte(secret), nowUnix()+int64(ttl.Seconds())))
	return 0
}
