package manifests

import (
	"fmt"

	"github.com/tracebridge/tracebridge/engine"
)

// base is the kustomize base: the tracebridge-extproc service, independent of
// the policy (each gateway overlay supplies the tracebridge-policy ConfigMap).
func (r *renderer) base() ([]File, error) {
	ns := r.o.gatewayNS()
	const name = "tracebridge-extproc"
	sel := map[string]any{"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "tracebridge"}

	sa := map[string]any{
		"apiVersion":                   "v1",
		"kind":                         "ServiceAccount",
		"metadata":                     r.meta(name, ns),
		"automountServiceAccountToken": false,
	}
	probe := func(path string, period int) map[string]any {
		return map[string]any{
			"httpGet":          map[string]any{"path": path, "port": "admin"},
			"periodSeconds":    period,
			"timeoutSeconds":   1,
			"failureThreshold": 3,
		}
	}
	args := []any{
		fmt.Sprintf("--listen=0.0.0.0:%d", extProcGRPCPort),
		fmt.Sprintf("--admin-listen=0.0.0.0:%d", extProcAdminPort),
		"--config=/etc/tracebridge/policy.json",
		"--direction=inbound",
		"--log-level=info",
	}
	if u := r.spanCollectorURL(); u != "" {
		args = append(args, "--span-collector="+u)
	}
	container := map[string]any{
		"name":            name,
		"image":           r.o.ExtProcImage,
		"imagePullPolicy": "IfNotPresent",
		"args":            args,
		"ports": []any{
			map[string]any{"name": "grpc", "containerPort": extProcGRPCPort, "protocol": "TCP"},
			map[string]any{"name": "admin", "containerPort": extProcAdminPort, "protocol": "TCP"},
		},
		"readinessProbe": probe("/readyz", 5),
		"livenessProbe":  probe("/healthz", 10),
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "100m", "memory": "64Mi"},
			"limits":   map[string]any{"memory": "256Mi"},
		},
		"securityContext": map[string]any{
			"runAsNonRoot":             true,
			"runAsUser":                65532,
			"runAsGroup":               65532,
			"readOnlyRootFilesystem":   true,
			"allowPrivilegeEscalation": false,
			"capabilities":             map[string]any{"drop": []any{"ALL"}},
			"seccompProfile":           map[string]any{"type": "RuntimeDefault"},
		},
		// Environment variables the policy names (secretEnv, env tag
		// sources) come from this optional Secret.
		"envFrom":      []any{map[string]any{"secretRef": map[string]any{"name": "tracebridge-extproc-env", "optional": true}}},
		"volumeMounts": []any{map[string]any{"name": "policy", "mountPath": "/etc/tracebridge", "readOnly": true}},
	}
	dep := map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   r.meta(name, ns),
		"spec": map[string]any{
			"replicas": 2,
			"selector": map[string]any{"matchLabels": sel},
			"template": map[string]any{
				"metadata": map[string]any{
					"labels": sel,
					"annotations": map[string]any{
						"prometheus.io/scrape": "true",
						"prometheus.io/port":   fmt.Sprint(extProcAdminPort),
						"prometheus.io/path":   "/metrics",
					},
				},
				"spec": map[string]any{
					"serviceAccountName":            name,
					"automountServiceAccountToken":  false,
					"terminationGracePeriodSeconds": 30,
					"securityContext": map[string]any{
						"runAsNonRoot":   true,
						"seccompProfile": map[string]any{"type": "RuntimeDefault"},
					},
					"containers": []any{container},
					"volumes": []any{map[string]any{"name": "policy", "configMap": map[string]any{
						"name": "tracebridge-policy",
					}}},
					"affinity": map[string]any{"podAntiAffinity": map[string]any{
						"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{
							"weight": 100,
							"podAffinityTerm": map[string]any{
								"topologyKey":   "kubernetes.io/hostname",
								"labelSelector": map[string]any{"matchLabels": sel},
							},
						}},
					}},
				},
			},
		},
	}
	svc := map[string]any{
		"apiVersion": "v1",
		"kind":       "Service",
		"metadata":   r.meta(name, ns),
		"spec": map[string]any{
			"selector": sel,
			"ports": []any{
				map[string]any{"name": "grpc", "port": extProcGRPCPort, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
				map[string]any{"name": "http-admin", "port": extProcAdminPort, "targetPort": "admin", "protocol": "TCP", "appProtocol": "http"},
			},
		},
	}
	pdb := map[string]any{
		"apiVersion": "policy/v1",
		"kind":       "PodDisruptionBudget",
		"metadata":   r.meta(name, ns),
		"spec": map[string]any{
			"minAvailable": 1,
			"selector":     map[string]any{"matchLabels": sel},
		},
	}
	return []File{
		{"istio/base/kustomization.yaml", kustomization(`Base: the tracebridge-extproc service, which the gateway overlays use.
It does not depend on the policy: each gateway overlay adds the
tracebridge-policy ConfigMap the Deployment mounts. The wasm overlays need no
base (the module runs in istio-proxy; its policy is the pluginConfig).`,
			"serviceaccount.yaml", "deployment.yaml", "service.yaml", "poddisruptionbudget.yaml")},
		{"istio/base/serviceaccount.yaml", yamlFile(doc{comment: "Identity of the ext_proc service; it calls no Kubernetes API, so no token is mounted.", obj: sa})},
		{"istio/base/deployment.yaml", yamlFile(doc{comment: `The ext_proc service beside the ingress gateway. Image: static binary, no
shell, user 65532 (tools/image). Probes on the admin port: /readyz turns
NOT_SERVING while draining, /healthz is liveness. terminationGracePeriodSeconds
30 exceeds --drain-timeout (20s) so open streams finish. Non-root, read-only
root filesystem, no capabilities. Environment variables the policy names
(trust.debugToken.secretEnv, env tag sources) come from the optional Secret
tracebridge-extproc-env. --direction=inbound is the fallback when the
policy says "auto" and Envoy sends no xds.listener_direction (the gateway
policies pin it anyway). The correlation store is per replica (memory); use
--store=redis://... to share it. The request headers the gateway forwards
(authorization included) reach this pod: keep it in the mesh (mTLS) or serve
TLS with --tls-cert/--tls-key/--client-ca.`, obj: dep})},
		{"istio/base/service.yaml", yamlFile(doc{comment: "gRPC for Envoy's ext_proc filter (appProtocol grpc: Istio uses HTTP/2), admin port for metrics.", obj: svc})},
		{"istio/base/poddisruptionbudget.yaml", yamlFile(doc{comment: "Keep one replica through voluntary disruptions (the filter fails open without it, losing enrichment).", obj: pdb})},
	}, nil
}

// spanCollectorURL is where the ext_proc service posts the client spans of
// a policy with clientSpans on: the endpoint the gateway placement's policy
// reports to (its clientSpans authority and path), which the service dials
// itself, as it cannot use an Envoy cluster. "" when clientSpans is off (or
// the gateway placements refuse the policy, which they report).
func (r *renderer) spanCollectorURL() string {
	if r.p.cfg.ClientSpans() == nil {
		return ""
	}
	d, err := r.p.derive(PlaceGateway, r.o.adapt(PlaceGateway))
	if err != nil {
		return ""
	}
	cfg, err := engine.LoadPolicy(d.json, placeholderEnv)
	if err != nil || cfg.ClientSpans() == nil {
		return ""
	}
	cs := cfg.ClientSpans()
	return "http://" + cs.Authority + cs.Path
}
