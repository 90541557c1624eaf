package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Modes, in the order `tracebridge manifests render` lists them.
const (
	ModeSidecarAutoForward        = "sidecar-auto-forward"
	ModePreciseParenting          = "precise-parenting"
	ModeGatewayEnrichment         = "gateway-enrichment"
	ModeGatewayEnrichmentUpstream = "gateway-enrichment-upstream"
	ModeEdgeTrust                 = "edge-trust"
	ModeEnvoy                     = "envoy"
)

// Modes lists every mode.
var Modes = []string{ModeSidecarAutoForward, ModePreciseParenting, ModeGatewayEnrichment,
	ModeGatewayEnrichmentUpstream, ModeEdgeTrust, ModeEnvoy}

// DefaultVersion is the image tag used when Options name no image.
const DefaultVersion = "0.1.0"

// Options choose what the manifests point at. The zero value renders the
// files shipped in manifests/.
type Options struct {
	// Mode restricts RenderMode; Render always renders every mode.
	Mode string
	// Image is the wasm module URL (default
	// oci://ghcr.io/tracebridge/tracebridge-wasm:<Version>).
	Image string
	// SHA256 of the wasm image manifest (WasmPlugin/TrafficExtension sha256),
	// as printed by `tracebridge image build`. Optional.
	SHA256 string
	// ExtProcImage is the ext_proc container image (default
	// ghcr.io/tracebridge/tracebridge-extproc:<Version>).
	ExtProcImage string
	// Version is the default image tag (DefaultVersion).
	Version string
	// Namespace of every namespaced resource (default: "default" for the
	// sidecar modes, "istio-system" for the gateway modes).
	Namespace string
	// WorkloadLabels select the sidecar workloads (default
	// tracebridge.io/enabled=true).
	WorkloadLabels map[string]string
	// GatewayLabels select the ingress gateway (default istio=ingressgateway).
	GatewayLabels map[string]string
	// GatewayBackends are the host:port services behind the gateway that get
	// the upstream ext_proc filter (gateway-enrichment-upstream). Never list
	// the ext_proc service or the trace collector.
	GatewayBackends []string
	// WasmFile is the module path in the plain Envoy bootstrap.
	WasmFile string
	// CustomTags chooses how the gateway's span tags are configured:
	// CustomTagsTelemetry (default: a Telemetry resource with customTags of
	// type formatter, Istio >= 1.29) or CustomTagsEnvoyFilter (an EnvoyFilter
	// patch of the gateway's tracing custom_tags, for older Istio).
	CustomTags string
	// CollectorService and CollectorPort name the mesh's tracing provider
	// (the service and port of its extension provider in the mesh config):
	// a policy that enables clientSpans without a cluster gets the cluster
	// Istio generates for it (IstioCollectorCluster). Default
	// DefaultCollectorService, DefaultCollectorPort.
	CollectorService string
	CollectorPort    int
}

// Values of Options.CustomTags.
const (
	CustomTagsTelemetry   = "telemetry"
	CustomTagsEnvoyFilter = "envoyfilter"
)

func (o *Options) defaults() {
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.Image == "" {
		o.Image = "oci://ghcr.io/tracebridge/tracebridge-wasm:" + o.Version
	}
	if o.ExtProcImage == "" {
		o.ExtProcImage = "ghcr.io/tracebridge/tracebridge-extproc:" + o.Version
	}
	if len(o.WorkloadLabels) == 0 {
		o.WorkloadLabels = map[string]string{"tracebridge.io/enabled": "true"}
	}
	if len(o.GatewayLabels) == 0 {
		o.GatewayLabels = map[string]string{"istio": "ingressgateway"}
	}
	if len(o.GatewayBackends) == 0 {
		o.GatewayBackends = []string{"productpage.bookinfo.svc.cluster.local:9080"}
	}
	if o.WasmFile == "" {
		o.WasmFile = "/etc/tracebridge/tracebridge.wasm"
	}
	if o.CustomTags == "" {
		o.CustomTags = CustomTagsTelemetry
	}
	if o.CollectorService == "" {
		o.CollectorService = DefaultCollectorService
	}
	if o.CollectorPort == 0 {
		o.CollectorPort = DefaultCollectorPort
	}
}

func (o *Options) check() error {
	if _, err := IstioCollectorCluster(o.CollectorService, o.CollectorPort); err != nil {
		return err
	}
	switch o.CustomTags {
	case CustomTagsTelemetry, CustomTagsEnvoyFilter:
		return nil
	}
	return fmt.Errorf("custom tags: must be %q or %q, got %q", CustomTagsTelemetry, CustomTagsEnvoyFilter, o.CustomTags)
}

// adapt is the proxy a placement's policy runs in: the Zipkin tracer every
// rendered resource configures, and the collector cluster of the mesh's
// tracing provider (the bootstrap's own cluster for plain Envoy).
func (o *Options) adapt(pl Placement) AdaptOptions {
	a := AdaptOptions{Tracer: "zipkin"}
	if pl == PlaceEnvoy {
		a.Collector = envoyZipkinCluster
	} else {
		a.Collector, _ = IstioCollectorCluster(o.CollectorService, o.CollectorPort)
	}
	return a
}

func (o *Options) sidecarNS() string {
	if o.Namespace != "" {
		return o.Namespace
	}
	return "default"
}

func (o *Options) gatewayNS() string {
	if o.Namespace != "" {
		return o.Namespace
	}
	return "istio-system"
}

// File is one rendered file; Path is relative to manifests/.
type File struct {
	Path string
	Data []byte
}

// Render renders every mode from one policy (JSON or YAML): the files of
// manifests/ except the Grafana dashboard and the sample policy itself.
func Render(policy []byte, opts Options) ([]File, error) {
	opts.defaults()
	if err := opts.check(); err != nil {
		return nil, err
	}
	data, err := PolicyJSON(policy)
	if err != nil {
		return nil, err
	}
	p, err := loadPolicy(data)
	if err != nil {
		return nil, err
	}
	files, _, err := render(p, opts)
	return files, err
}

func render(p *policyDoc, opts Options) ([]File, map[string]error, error) {
	r := &renderer{p: p, o: opts}
	var files []File
	for _, step := range []func() ([]File, error){
		r.base, r.sidecarAutoForward, r.preciseParenting, r.gatewayEnrichment,
		r.gatewayEnrichmentUpstream, r.edgeTrust, r.envoy, r.meshProvider,
	} {
		fs, err := step()
		if err != nil {
			return nil, nil, err
		}
		files = append(files, fs...)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, r.skipped, nil
}

// modeFiles says which rendered files make up a mode's complete resource set,
// in apply order.
var modeFiles = map[string][]string{
	ModeSidecarAutoForward: {
		"istio/overlays/sidecar-auto-forward/telemetry.yaml",
		"istio/overlays/sidecar-auto-forward/trafficextension.yaml",
	},
	ModePreciseParenting: {
		"istio/overlays/precise-parenting/telemetry.yaml",
		"istio/overlays/precise-parenting/trafficextension.yaml",
		"istio/overlays/precise-parenting/envoyfilter.yaml",
	},
	ModeGatewayEnrichment: {
		"istio/overlays/gateway-enrichment/configmap.yaml",
		"istio/base/serviceaccount.yaml",
		"istio/base/deployment.yaml",
		"istio/base/service.yaml",
		"istio/base/poddisruptionbudget.yaml",
		"istio/overlays/gateway-enrichment/envoyfilter.yaml",
		"istio/overlays/gateway-enrichment/telemetry.yaml",
	},
	ModeGatewayEnrichmentUpstream: {
		"istio/overlays/gateway-enrichment-upstream/configmap.yaml",
		"istio/base/serviceaccount.yaml",
		"istio/base/deployment.yaml",
		"istio/base/service.yaml",
		"istio/base/poddisruptionbudget.yaml",
		"istio/overlays/gateway-enrichment-upstream/envoyfilter.yaml",
		"istio/overlays/gateway-enrichment-upstream/telemetry.yaml",
	},
	ModeEdgeTrust: {"istio/overlays/edge-trust/envoyfilter.yaml"},
	ModeEnvoy:     {"envoy/envoy.yaml"},
}

// optionalFiles are mode files rendered only for some policies and options
// (the gateway tag Telemetry: only with tags and --custom-tags telemetry).
var optionalFiles = map[string]bool{
	"istio/overlays/gateway-enrichment/telemetry.yaml":          true,
	"istio/overlays/gateway-enrichment-upstream/telemetry.yaml": true,
}

// RenderMode renders one mode's complete resource set as one YAML stream
// (what `tracebridge manifests render --mode M` prints). legacyWasmPlugin
// swaps the TrafficExtension for the WasmPlugin (Istio < 1.30).
func RenderMode(policy []byte, opts Options, legacyWasmPlugin bool) ([]byte, error) {
	names, ok := modeFiles[opts.Mode]
	if !ok {
		return nil, fmt.Errorf("unknown mode %q (known: %s)", opts.Mode, strings.Join(Modes, ", "))
	}
	opts.defaults()
	if err := opts.check(); err != nil {
		return nil, err
	}
	data, err := PolicyJSON(policy)
	if err != nil {
		return nil, err
	}
	p, err := loadPolicy(data)
	if err != nil {
		return nil, err
	}
	files, skipped, err := render(p, opts)
	if err != nil {
		return nil, err
	}
	if err := skipped[opts.Mode]; err != nil {
		return nil, fmt.Errorf("mode %s: %w", opts.Mode, err)
	}
	byPath := map[string][]byte{}
	for _, f := range files {
		byPath[f.Path] = f.Data
	}
	var out bytes.Buffer
	for _, n := range names {
		if legacyWasmPlugin {
			n = strings.Replace(n, "trafficextension.yaml", "wasmplugin.yaml", 1)
		}
		data, ok := byPath[n]
		if !ok && optionalFiles[n] {
			continue
		}
		if !ok {
			return nil, fmt.Errorf("internal: %s not rendered", n)
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		fmt.Fprintf(&out, "# Source: manifests/%s\n", n)
		out.Write(data)
	}
	return out.Bytes(), nil
}

// doc is one YAML document with its leading comment.
type doc struct {
	comment string
	obj     any
}

const generatedHeader = "Generated by `tracebridge manifests render` from one policy document; do not edit.\n" +
	"Regenerate: go test ./tools/manifests -run TestShippedManifests -update"

// yamlFile writes documents separated by ---, each preceded by its comment.
func yamlFile(docs ...doc) []byte {
	var b bytes.Buffer
	for i, d := range docs {
		if i > 0 {
			b.WriteString("---\n")
		}
		c := d.comment
		if i == 0 {
			c = generatedHeader + "\n\n" + c
		}
		writeComment(&b, strings.TrimRight(c, "\n"))
		data, err := yaml.Marshal(d.obj)
		if err != nil {
			panic(err)
		}
		b.Write(data)
	}
	return b.Bytes()
}

func writeComment(b *bytes.Buffer, c string) {
	if c == "" {
		return
	}
	for _, line := range strings.Split(c, "\n") {
		if line == "" {
			b.WriteString("#\n")
			continue
		}
		b.WriteString("# " + line + "\n")
	}
}

type renderer struct {
	p       *policyDoc
	o       Options
	skipped map[string]error
}

// skip records that a mode cannot be rendered for this policy; Render goes
// on (the other modes are fine), RenderMode reports it.
func (r *renderer) skip(mode string, err error) {
	if r.skipped == nil {
		r.skipped = map[string]error{}
	}
	r.skipped[mode] = err
}

func (r *renderer) meta(name, ns string) map[string]any {
	return map[string]any{
		"name":      name,
		"namespace": ns,
		"labels": map[string]any{
			"app.kubernetes.io/name":    name,
			"app.kubernetes.io/part-of": "tracebridge",
		},
	}
}

func labelsAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func kustomization(comment string, resources ...string) []byte {
	return yamlFile(doc{comment: comment, obj: map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  resources,
	}})
}

// policyObject turns a policy document into the generic object pluginConfig
// and ConfigMaps carry.
func policyObject(d *derived) map[string]any { return d.doc }

func notesComment(d *derived) string {
	if len(d.notes) == 0 {
		return "Policy: the document as written."
	}
	return "Policy adapted to this placement:\n" + bullet(d.notes)
}

func bullet(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("- " + l + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// prettyJSON indents a policy for a ConfigMap.
func prettyJSON(v any) string {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(data) + "\n"
}

var hostPortRE = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?):([0-9]{1,5})$`)

func splitHostPort(s string) (string, int, error) {
	m := hostPortRE.FindStringSubmatch(s)
	if m == nil {
		return "", 0, fmt.Errorf("gateway backend %q: want host:port, e.g. productpage.bookinfo.svc.cluster.local:9080", s)
	}
	var port int
	fmt.Sscanf(m[3], "%d", &port)
	if port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("gateway backend %q: port out of range", s)
	}
	return m[1], port, nil
}

func (r *renderer) extProcHost() string {
	return "tracebridge-extproc." + r.o.gatewayNS() + ".svc.cluster.local"
}

// extProcCluster is the cluster Istio generates for the ext_proc Service.
func (r *renderer) extProcCluster() string {
	return fmt.Sprintf("outbound|%d||%s", extProcGRPCPort, r.extProcHost())
}

func (r *renderer) checkBackends() error {
	for _, b := range r.o.GatewayBackends {
		h, _, err := splitHostPort(b)
		if err != nil {
			return err
		}
		if h == r.extProcHost() {
			return fmt.Errorf("gateway backend %q is the ext_proc service itself: its own calls would go through ext_proc", b)
		}
	}
	return nil
}
