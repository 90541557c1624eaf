package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kubeconform's own schemas for Kubernetes built-in kinds come from the
// network (kubernetes-json-schema). Offline, the only API-server OpenAPI
// documents at hand are the ones client-go ships as test data (a Kubernetes
// 1.34 API server's /openapi/v3 for core/v1 and apps/v1), in the module cache
// because buildtools needs client-go. They give schemas for Deployment,
// Service, ServiceAccount and ConfigMap. PodDisruptionBudget (policy/v1) has
// none offline and is skipped, as is Kustomization (not an API object); both
// are still parsed strictly (TestIstioResourcesStrict, checkKustomization).
const clientGoTestdata = "k8s.io/client-go@v0.34.1"

var k8sOpenAPIDocs = []string{"api__v1_openapi.json", "apis__apps__v1_openapi.json"}

var k8sSchemaKinds = []string{"Deployment", "Service", "ServiceAccount", "ConfigMap"}

// k8sSchemas writes kubeconform schemas for the built-in kinds available
// offline; it returns the kinds without a schema, which kubeconform skips.
func k8sSchemas(t *testing.T, dir string) (skip []string) {
	t.Helper()
	skip = []string{"PodDisruptionBudget", "Kustomization"}
	cmd := exec.Command("go", "mod", "download", "-json", clientGoTestdata)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, err := cmd.Output()
	var mod struct{ Dir string }
	if err == nil {
		err = json.Unmarshal(out, &mod)
	}
	if err != nil || mod.Dir == "" {
		t.Logf("no offline Kubernetes OpenAPI documents (%s not in the module cache: %v): built-in kinds skipped", clientGoTestdata, err)
		return append(skip, k8sSchemaKinds...)
	}
	for _, name := range k8sOpenAPIDocs {
		doc, err := os.ReadFile(filepath.Join(mod.Dir, "openapi", "openapitest", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenAPIv3Schemas(doc, dir, true); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, want := range []string{"apps/deployment_v1.json", "v1/service_v1.json", "v1/serviceaccount_v1.json", "v1/configmap_v1.json"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("schema %s not generated: %v", want, err)
		}
	}
	return skip
}

// kubeconform returns the pinned kubeconform binary, building it with
// buildtools/build.sh when needed (from the module cache; the network only
// if the cache lacks a module and the environment allows it).
func kubeconform(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "buildtools", "build.sh")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("kubeconform is pinned by buildtools/build.sh, which is missing: %v", err)
	}
	cmd := exec.Command(script, "kubeconform")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("buildtools/build.sh kubeconform: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// istioSchemas writes the JSON schemas of Istio's CRDs, generated offline
// from the CRD file of the istio.io/api module this repository pins.
func istioSchemas(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("go list -m istio.io/api: %v", err)
	}
	crd, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := CRDSchemas(crd, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"networking.istio.io/envoyfilter_v1alpha3.json", "extensions.istio.io/wasmplugin_v1alpha1.json",
		"extensions.istio.io/trafficextension_v1alpha1.json", "telemetry.istio.io/telemetry_v1alpha1.json"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("schema %s not generated (%d files): %v", want, len(files), err)
		}
	}
	return dir
}

func runKubeconform(t *testing.T, bin, schemas string, skip []string, files ...string) (string, error) {
	t.Helper()
	args := []string{"-strict", "-summary", "-output", "text",
		"-schema-location", KubeconformSchemaLocation(schemas),
		"-skip", strings.Join(skip, ","),
	}
	cmd := exec.Command(bin, append(args, files...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKubeconformStrict validates every shipped Istio manifest with
// kubeconform -strict against schemas generated from Istio's CRDs.
func TestKubeconformStrict(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kubeconform")
	}
	bin := kubeconform(t)
	schemas := istioSchemas(t)
	skip := k8sSchemas(t, schemas)
	var files []string
	err := filepath.WalkDir(filepath.Join(shippedDir, "istio"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := runKubeconform(t, bin, schemas, skip, files...)
	if err != nil {
		t.Fatalf("kubeconform: %v\n%s", err, out)
	}
	t.Logf("kubeconform -strict (kinds skipped: %s):\n%s", strings.Join(skip, ", "), out)
	if !strings.Contains(out, "Invalid: 0, Errors: 0") {
		t.Errorf("kubeconform summary: %s", out)
	}
	wantValid := 12 // the Istio resources
	if !slices.Contains(skip, "Deployment") {
		wantValid += 5 // Deployment, Service, ServiceAccount, two ConfigMaps
	}
	if !strings.Contains(out, fmt.Sprintf("Valid: %d,", wantValid)) {
		t.Errorf("kubeconform summary: want %d valid resources: %s", wantValid, out)
	}

	// A policy using every mapped feature (vmConfig env, sha256, formatter tags).
	rich, err := Render([]byte(richPolicy), Options{SHA256: strings.Repeat("ab", 32)})
	if err != nil {
		t.Fatal(err)
	}
	richDir := t.TempDir()
	if err := WriteFiles(richDir, rich); err != nil {
		t.Fatal(err)
	}
	if out, err := runKubeconform(t, bin, schemas, skip, filepath.Join(richDir, "istio")); err != nil || !strings.Contains(out, "Invalid: 0, Errors: 0") {
		t.Errorf("kubeconform on the rich policy's manifests: %v\n%s", err, out)
	}

	// The schemas must bite: an unknown field and a wrong enum are rejected.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	for _, doc := range []string{
		"apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x, namespace: y}\nspec:\n  url: oci://r/x:1\n  bogusField: 1\n",
		"apiVersion: extensions.istio.io/v1alpha1\nkind: TrafficExtension\nmetadata: {name: x, namespace: y}\nspec:\n  phase: SOMETIMES\n  wasm: {url: oci://r/x:1}\n",
		"apiVersion: telemetry.istio.io/v1alpha1\nkind: Telemetry\nmetadata: {name: x, namespace: y}\nspec:\n  tracing:\n  - match: {mode: SERVER}\n    customTags: {a: {header: {name: x, bogus: 1}}}\n",
		"apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: x, namespace: y}\nspec:\n  configPatches:\n  - applyTo: CLUSTR\n    patch: {operation: MERGE, value: {}}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: y}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers:\n      - {name: c, image: i, readinesProbe: {}}\n",
	} {
		if strings.Contains(doc, "kind: Deployment") && slices.Contains(skip, "Deployment") {
			continue
		}
		if err := os.WriteFile(bad, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runKubeconform(t, bin, schemas, skip, bad)
		if err == nil || !strings.Contains(out, "Invalid: 1") {
			t.Errorf("kubeconform accepted an invalid resource:\n%s\n%s", doc, out)
		}
	}
}
