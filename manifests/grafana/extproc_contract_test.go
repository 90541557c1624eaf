package grafana

import (
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/tracebridge/tracebridge/extproc"
)

// TestExtprocContract compares the dashboard's metric list with what the
// ext_proc service really registers: names, types, label names and the label
// values it pre-creates. A metric added to the service must be added to
// Metrics (and then to a panel, which TestDashboardQueries enforces).
func TestExtprocContract(t *testing.T) {
	families, err := extproc.NewMetrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "tracebridge_") {
			got[f.GetName()] = f
		}
	}
	want := map[string]Metric{}
	for _, m := range Metrics {
		if m.Source == "extproc" {
			want[m.Name] = m
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("the service registers %s, which the dashboard contract does not list", name)
		}
	}
	types := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE, "histogram": dto.MetricType_HISTOGRAM}
	for name, m := range want {
		f, ok := got[name]
		if !ok {
			t.Errorf("%s is in the contract but the service does not register it", name)
			continue
		}
		if f.GetType() != types[m.Type] {
			t.Errorf("%s: service type %s, contract %s", name, f.GetType(), m.Type)
		}
		seen := map[string][]string{}
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				if !slices.Contains(seen[lp.GetName()], lp.GetValue()) {
					seen[lp.GetName()] = append(seen[lp.GetName()], lp.GetValue())
				}
			}
		}
		var names []string
		for l := range seen {
			names = append(names, l)
		}
		sort.Strings(names)
		wantLabels := slices.Clone(m.Labels)
		sort.Strings(wantLabels)
		if len(f.GetMetric()) > 0 && !slices.Equal(names, wantLabels) {
			t.Errorf("%s: service labels %v, contract %v", name, names, wantLabels)
		}
		for l, vals := range seen {
			known := LabelValues[l]
			sort.Strings(vals)
			k := slices.Clone(known)
			sort.Strings(k)
			if !slices.Equal(vals, k) {
				t.Errorf("%s{%s}: service values %v, contract %v", name, l, vals, k)
			}
		}
	}
}
