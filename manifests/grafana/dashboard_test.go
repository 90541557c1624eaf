package grafana

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	GridPos    gridPos    `json:"gridPos"`
	Datasource datasource `json:"datasource"`
	Targets    []target   `json:"targets"`
	Panels     []panel    `json:"panels"`
}

type gridPos struct{ H, W, X, Y int }

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID        string     `json:"refId"`
	Expr         string     `json:"expr"`
	LegendFormat string     `json:"legendFormat"`
	Datasource   datasource `json:"datasource"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Definition string          `json:"definition"`
	Query      json.RawMessage `json:"query"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(Dashboard)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("tracebridge.json: %v", err)
	}
	return d
}

var (
	metricRef   = regexp.MustCompile(`\btracebridge_[a-z0-9_]*`)
	selectorRe  = regexp.MustCompile(`(tracebridge_[a-z0-9_]*)\s*\{([^}]*)\}`)
	matcherRe   = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)
	groupingRe  = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendRe    = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	variableRe  = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)`)
	histoSuffix = []string{"_bucket", "_sum", "_count"}
)

// resolve maps a series name used in PromQL to its Metric and whether the
// series is a histogram bucket.
func resolve(series string) (Metric, bool, error) {
	for _, m := range Metrics {
		if m.Type == "histogram" {
			for _, s := range histoSuffix {
				if series == m.Name+s {
					return m, s == "_bucket", nil
				}
			}
			if series == m.Name {
				return Metric{}, false, fmt.Errorf("histogram %s queried without _bucket/_sum/_count", series)
			}
			continue
		}
		if series == m.Name {
			return m, false, nil
		}
	}
	return Metric{}, false, fmt.Errorf("unknown metric %s", series)
}

// checkQuery validates one PromQL expression and its legend against the
// metric contract; it returns the metrics referenced.
func checkQuery(expr, legend string) ([]string, error) {
	refs := metricRef.FindAllString(expr, -1)
	if len(refs) == 0 {
		return nil, fmt.Errorf("no tracebridge metric in %q", expr)
	}
	allowed := map[string]bool{}
	for _, l := range ScrapeLabels {
		allowed[l] = true
	}
	var names []string
	for _, r := range refs {
		m, bucket, err := resolve(r)
		if err != nil {
			return nil, err
		}
		names = append(names, m.Name)
		for _, l := range m.Labels {
			allowed[l] = true
		}
		if bucket {
			allowed["le"] = true
		}
	}
	for _, sel := range selectorRe.FindAllStringSubmatch(expr, -1) {
		m, bucket, _ := resolve(sel[1])
		own := slices.Concat(m.Labels, ScrapeLabels)
		if bucket {
			own = append(own, "le")
		}
		for _, part := range strings.Split(sel[2], ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			mm := matcherRe.FindStringSubmatch(part)
			if mm == nil {
				return nil, fmt.Errorf("cannot parse matcher %q in %q", part, expr)
			}
			label, op, value := mm[1], mm[2], mm[3]
			if !slices.Contains(own, label) {
				return nil, fmt.Errorf("%s has no label %q", sel[1], label)
			}
			if strings.HasPrefix(value, "$") || (op != "=" && op != "=~") {
				continue
			}
			domain, ok := LabelValues[label]
			if !ok {
				continue
			}
			for _, v := range strings.Split(value, "|") {
				if !slices.Contains(domain, v) {
					return nil, fmt.Errorf("%s=%q: %q is not a known value", label, value, v)
				}
			}
		}
	}
	for _, g := range groupingRe.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !allowed[l] {
				return nil, fmt.Errorf("grouping by %q, which none of %v carries", l, refs)
			}
		}
	}
	for _, l := range legendRe.FindAllStringSubmatch(legend, -1) {
		if !allowed[l[1]] {
			return nil, fmt.Errorf("legend uses {{%s}}, which none of %v carries", l[1], refs)
		}
	}
	return names, nil
}

func TestCheckQueryRejects(t *testing.T) {
	tests := []struct{ name, expr, legend string }{
		{"no metric", `sum(rate(envoy_cluster_upstream_rq_total[5m]))`, ""},
		{"typo in name", `sum(rate(tracebridge_decision_total[5m]))`, ""},
		{"histogram without suffix", `tracebridge_extproc_request_duration_seconds`, ""},
		{"unknown label", `tracebridge_extproc_streams_active{direction="inbound"}`, ""},
		{"unknown decision", `tracebridge_decisions_total{decision=~"kept|fixed"}`, ""},
		{"unknown direction", `tracebridge_decisions_total{direction="upstream"}`, ""},
		{"le on a counter", `sum by (le) (rate(tracebridge_extproc_store_errors_total[5m]))`, ""},
		{"legend label missing", `sum(rate(tracebridge_extproc_decisions_total[5m]))`, "{{direction}}"},
		{"bad matcher", `tracebridge_decisions_total{decision~"kept"}`, ""},
		{"unknown kind", `tracebridge_extproc_request_duration_seconds_count{kind="headers"}`, ""},
		{"op on the wrong metric", `tracebridge_extproc_unexpected_messages_total{op="get"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := checkQuery(tt.expr, tt.legend); err == nil {
				t.Fatalf("checkQuery(%q) accepted it", tt.expr)
			}
		})
	}
	ok := `histogram_quantile(0.9, sum by (le) (rate(tracebridge_extproc_request_duration_seconds_bucket{namespace=~"$namespace"}[5m])))`
	if _, err := checkQuery(ok, "p90"); err != nil {
		t.Fatalf("checkQuery rejects a valid query: %v", err)
	}
}

func TestDashboardQueries(t *testing.T) {
	d := load(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Fatalf("uid %q title %q schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{"__rate_interval": true, "__range": true, "__interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type == "query" {
			if _, err := checkQuery(v.Definition, ""); err != nil {
				t.Errorf("variable %s: %v", v.Name, err)
			}
		}
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	var cells []panel
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			cells = append(cells, p)
			if p.Title == "" {
				t.Errorf("panel %d has no title", p.ID)
			}
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			refIDs := map[string]bool{}
			for _, tg := range p.Targets {
				if refIDs[tg.RefID] {
					t.Errorf("panel %q: refId %s twice", p.Title, tg.RefID)
				}
				refIDs[tg.RefID] = true
				names, err := checkQuery(tg.Expr, tg.LegendFormat)
				if err != nil {
					t.Errorf("panel %q query %s: %v", p.Title, tg.RefID, err)
				}
				for _, n := range names {
					used[n] = true
				}
				for _, v := range variableRe.FindAllStringSubmatch(tg.Expr, -1) {
					if !vars[v[1]] {
						t.Errorf("panel %q uses undefined variable $%s", p.Title, v[1])
					}
				}
			}
		}
	}
	walk(d.Panels)
	for _, m := range Metrics {
		if !used[m.Name] {
			t.Errorf("no panel shows %s", m.Name)
		}
	}
	// Layout: inside the 24-column grid and no two panels overlapping.
	for i, a := range cells {
		g := a.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q gridPos %+v outside the grid", a.Title, g)
		}
		for _, b := range cells[i+1:] {
			h := b.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
}

// TestEveryDecisionCanBeShown guards the per-decision panels: they group by
// the decision label instead of listing values, so a new decision shows up
// without a dashboard change; the fixed lists in queries must stay within
// Decisions (checked by checkQuery).
func TestEveryDecisionCanBeShown(t *testing.T) {
	d := load(t)
	grouped := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, g := range groupingRe.FindAllStringSubmatch(tg.Expr, -1) {
				if !strings.Contains(g[1], "decision") {
					continue
				}
				for _, r := range metricRef.FindAllString(tg.Expr, -1) {
					grouped[r] = true
				}
			}
		}
	}
	for _, m := range []string{"tracebridge_decisions_total", "tracebridge_extproc_decisions_total"} {
		if !grouped[m] {
			t.Errorf("no panel breaks %s down by decision", m)
		}
	}
}
