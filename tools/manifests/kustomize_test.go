package manifests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestKustomizeOverlays builds every overlay with `kubectl kustomize` (when
// kubectl is installed; it needs no cluster) and checks it yields exactly the
// resources `tracebridge manifests render --mode` prints for that mode.
func TestKustomizeOverlays(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH: kustomize build not checked")
	}
	policy, err := os.ReadFile(filepath.Join(shippedDir, "sample-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range Modes {
		if mode == ModeEnvoy {
			continue
		}
		t.Run(mode, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", filepath.Join(shippedDir, "istio", "overlays", mode)).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize: %v\n%s", err, out)
			}
			want, err := RenderMode(policy, Options{Mode: mode}, false)
			if err != nil {
				t.Fatal(err)
			}
			got, exp := documents(t, out), documents(t, want)
			if !slices.Equal(sortedIDs(got), sortedIDs(exp)) {
				t.Errorf("kustomize build yields %v\nrender --mode yields %v", sortedIDs(got), sortedIDs(exp))
			}
			for id, g := range got {
				if e, ok := exp[id]; ok && !reflect.DeepEqual(g, e) {
					t.Errorf("%s: kustomize changed the resource:\nkustomize: %v\nrender:    %v", id, g, e)
				}
			}
		})
	}
}

// documents maps kind/namespace/name to the parsed document.
func documents(t *testing.T, stream []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, d := range yamlDocs(t, stream) {
		var m map[string]any
		if err := yaml.Unmarshal(d, &m); err != nil {
			t.Fatal(err)
		}
		md, _ := m["metadata"].(map[string]any)
		out[fmt.Sprintf("%v/%v/%v", m["kind"], md["namespace"], md["name"])] = m
	}
	return out
}

func sortedIDs(m map[string]map[string]any) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
