// Package kubernetes holds the tests of the kustomize base and overlays in
// this directory: both overlays are built with the kustomize Go API (as
// `kubectl apply -k` builds them), every object is decoded strictly into the
// k8s.io/api types, and the profile rules of issue 14 are asserted. The
// ConfigMap payloads are loaded with nxwatcher's own parsers.
package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/nx-watcher/nxwatcher/internal/agent"
	"github.com/nx-watcher/nxwatcher/internal/collector"
	"github.com/nx-watcher/nxwatcher/internal/config"
	"github.com/nx-watcher/nxwatcher/internal/leakcheck"
	"github.com/nx-watcher/nxwatcher/internal/ruler"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Upstream()...)
}

const (
	namespace      = "nx-watcher"
	poolLabel      = "node.kubernetes.io/pool"
	serveName      = "nx-watcher"
	agentName      = "nxwatcher-agent"
	nodeExporter   = "node-exporter"
	collectorName  = "nx-otel-collector"
	grafanaSecret  = "grafana-secret"
	monitoringTain = "dedicated=monitoring:NoSchedule"
)

// profile is one built overlay, decoded.
type profile struct {
	name       string
	objects    []runtime.Object
	raw        [][]byte                     // every object as JSON, as kustomize built it
	names      []string                     // kind/name of each raw object
	configMaps map[string]*corev1.ConfigMap // by name without the hash suffix
	services   map[string]*corev1.Service
	workloads  map[string]workload // StatefulSets, Deployments, DaemonSets by name
}

type workload struct {
	kind     string
	template corev1.PodTemplateSpec
	selector map[string]string
	obj      runtime.Object
}

var profiles = map[string]*profile{}

// hashSuffix is what configMapGenerator appends to a ConfigMap's name.
var hashSuffix = regexp.MustCompile(`-[a-z0-9]{10}$`)

func build(t *testing.T, name string) *profile {
	t.Helper()
	if p, ok := profiles[name]; ok {
		return p
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("overlays", name))
	if err != nil {
		t.Fatalf("kustomize build overlays/%s: %v", name, err)
	}
	p := &profile{
		name:       name,
		configMaps: map[string]*corev1.ConfigMap{},
		services:   map[string]*corev1.Service{},
		workloads:  map[string]workload{},
	}
	codec := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, gvk, err := codec.Decode(y, nil, nil)
		if err != nil {
			t.Fatalf("overlays/%s: %s %s does not decode strictly into k8s.io/api types: %v", name, r.GetKind(), r.GetName(), err)
		}
		p.objects = append(p.objects, obj)
		j, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		p.raw = append(p.raw, j)
		p.names = append(p.names, r.GetKind()+"/"+r.GetName())
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			p.configMaps[hashSuffix.ReplaceAllString(o.Name, "")] = o
		case *corev1.Service:
			p.services[o.Name] = o
		case *appsv1.StatefulSet:
			p.workloads[o.Name] = workload{gvk.Kind, o.Spec.Template, o.Spec.Selector.MatchLabels, o}
		case *appsv1.Deployment:
			p.workloads[o.Name] = workload{gvk.Kind, o.Spec.Template, o.Spec.Selector.MatchLabels, o}
		case *appsv1.DaemonSet:
			p.workloads[o.Name] = workload{gvk.Kind, o.Spec.Template, o.Spec.Selector.MatchLabels, o}
		}
	}
	profiles[name] = p
	return p
}

func eachProfile(t *testing.T, f func(t *testing.T, p *profile)) {
	for _, name := range []string{"staging", "production"} {
		t.Run(name, func(t *testing.T) { f(t, build(t, name)) })
	}
}

func TestObjectsAreNamespacedAndNamed(t *testing.T) {
	eachProfile(t, func(t *testing.T, p *profile) {
		for _, obj := range p.objects {
			m, ok := obj.(interface {
				GetNamespace() string
				GetName() string
			})
			if !ok {
				t.Fatalf("%T has no metadata", obj)
			}
			gvk := obj.GetObjectKind().GroupVersionKind()
			clusterScoped := slices.Contains([]string{"Namespace", "ClusterRole", "ClusterRoleBinding"}, gvk.Kind)
			if clusterScoped && m.GetNamespace() != "" || !clusterScoped && m.GetNamespace() != namespace {
				t.Errorf("%s %s: namespace %q", gvk.Kind, m.GetName(), m.GetNamespace())
			}
		}
		for name, w := range p.workloads {
			if !isSubset(w.selector, w.template.Labels) || len(w.selector) == 0 {
				t.Errorf("%s %s: selector %v does not select its template labels %v", w.kind, name, w.selector, w.template.Labels)
			}
		}
	})
}

// TestScheduling: production workloads select the monitoring pool and
// tolerate its taint; staging ones select the default pool and tolerate
// nothing; the DaemonSets run everywhere in both.
func TestScheduling(t *testing.T) {
	everywhere := []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	monitoring := []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "monitoring", Effect: corev1.TaintEffectNoSchedule}}
	eachProfile(t, func(t *testing.T, p *profile) {
		want := map[string]bool{serveName: true, "kube-state-metrics": true, agentName: true, nodeExporter: true}
		if p.name == "production" {
			want[collectorName] = true
		}
		for name := range p.workloads {
			if !want[name] {
				t.Errorf("unexpected workload %s", name)
			}
			delete(want, name)
		}
		for name := range want {
			t.Errorf("workload %s is missing", name)
		}
		for name, w := range p.workloads {
			spec := w.template.Spec
			switch {
			case w.kind == "DaemonSet":
				if !reflect.DeepEqual(spec.Tolerations, everywhere) || len(spec.NodeSelector) != 0 {
					t.Errorf("DaemonSet %s: tolerations %+v nodeSelector %v, want [{operator: Exists}] and none", name, spec.Tolerations, spec.NodeSelector)
				}
			case p.name == "production":
				if spec.NodeSelector[poolLabel] != "monitoring" || len(spec.NodeSelector) != 1 {
					t.Errorf("%s %s: nodeSelector %v, want %s: monitoring", w.kind, name, spec.NodeSelector, poolLabel)
				}
				if !reflect.DeepEqual(spec.Tolerations, monitoring) {
					t.Errorf("%s %s: tolerations %+v, want the %s toleration", w.kind, name, spec.Tolerations, monitoringTain)
				}
			default:
				if spec.NodeSelector[poolLabel] != "default" || len(spec.NodeSelector) != 1 {
					t.Errorf("%s %s: nodeSelector %v, want %s: default", w.kind, name, spec.NodeSelector, poolLabel)
				}
				if len(spec.Tolerations) != 0 {
					t.Errorf("%s %s: tolerations %+v, want none in staging", w.kind, name, spec.Tolerations)
				}
			}
		}
	})
}

// listening returns the ports each workload's process listens on, read from
// its own config and arguments, not from the manifest's containerPorts.
func listening(t *testing.T, p *profile) map[string][]int32 {
	t.Helper()
	out := map[string][]int32{}

	serve := loadServeConfig(t, p)
	args := p.workloads[serveName].template.Spec.Containers[0].Args
	web := argValue(t, args, "--web.listen-address")
	out[serveName] = append(out[serveName], portOf(t, web))
	if serve.Alerting.Enabled && serve.Alerting.ListenAddress != "" {
		out[serveName] = append(out[serveName], portOf(t, serve.Alerting.ListenAddress))
	}
	if serve.OTLP.Enabled {
		out[serveName] = append(out[serveName], portOf(t, serve.OTLP.GRPCEndpoint), portOf(t, serve.OTLP.HTTPEndpoint))
	}
	if serve.UI.ListenAddress != "" {
		out[serveName] = append(out[serveName], portOf(t, serve.UI.ListenAddress))
	}

	ag, err := agent.Parse([]byte(p.configMap(t, "promtail-config").Data["promtail.yaml"]), false)
	if err != nil {
		t.Fatal(err)
	}
	out[agentName] = []int32{int32(ag.Server.HTTPListenPort)}

	if cm, ok := p.configMaps["otel-collector-config"]; ok {
		var c struct {
			Receivers struct {
				OTLP struct {
					Protocols map[string]struct {
						Endpoint string `yaml:"endpoint"`
					} `yaml:"protocols"`
				} `yaml:"otlp"`
			} `yaml:"receivers"`
			Service struct {
				Telemetry struct {
					Metrics struct {
						Address string `yaml:"address"`
					} `yaml:"metrics"`
				} `yaml:"telemetry"`
			} `yaml:"service"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["otel-collector.yaml"]), &c); err != nil {
			t.Fatal(err)
		}
		for _, proto := range []string{"grpc", "http"} {
			out[collectorName] = append(out[collectorName], portOf(t, c.Receivers.OTLP.Protocols[proto].Endpoint))
		}
		out[collectorName] = append(out[collectorName], portOf(t, c.Service.Telemetry.Metrics.Address))
	}
	out[nodeExporter] = []int32{portOf(t, argValue(t, p.workloads[nodeExporter].template.Spec.Containers[0].Args, "--web.listen-address"))}
	out["kube-state-metrics"] = []int32{
		portOf(t, ":"+argValue(t, p.workloads["kube-state-metrics"].template.Spec.Containers[0].Args, "--port")),
		portOf(t, ":"+argValue(t, p.workloads["kube-state-metrics"].template.Spec.Containers[0].Args, "--telemetry-port")),
	}
	return out
}

// TestContainerPortsAreListened: every declared containerPort is one the
// process listens on according to its config, and the other way round.
func TestContainerPortsAreListened(t *testing.T) {
	eachProfile(t, func(t *testing.T, p *profile) {
		listen := listening(t, p)
		for name, w := range p.workloads {
			var declared []int32
			for _, c := range w.template.Spec.Containers {
				for _, port := range c.Ports {
					declared = append(declared, port.ContainerPort)
				}
			}
			slices.Sort(declared)
			want := slices.Sorted(slices.Values(listen[name]))
			if !slices.Equal(declared, want) {
				t.Errorf("%s: containerPorts %v, but its config listens on %v", name, declared, want)
			}
		}
	})
}

// TestServices: the design doc's Service names and ports exist and each
// selects a pod whose process listens on the target port.
func TestServices(t *testing.T) {
	want := map[string]map[string][]int32{
		"staging": {
			"nx-prometheus":   {9090},
			"nx-loki":         {3100},
			"nx-alertmanager": {9093},
			"nx-grafana":      {3000},
		},
		"production": {
			"nx-prometheus":     {9090},
			"nx-loki":           {3100},
			"nx-alertmanager":   {9093},
			"nx-grafana":        {3000},
			"nx-tempo":          {3200, 4317},
			"nx-otel-collector": {4317, 4318, 8888},
		},
	}
	// The serve pod's main listener answers every API; the Services must
	// not point the Loki, Tempo, Grafana or Prometheus port anywhere else.
	// nx-grafana goes to the UI's own port (ui.listen_address), where a login is needed.
	mainPort := map[string]bool{"nx-prometheus/9090": true, "nx-loki/3100": true, "nx-tempo/3200": true}
	eachProfile(t, func(t *testing.T, p *profile) {
		listen := listening(t, p)
		for svc, ports := range want[p.name] {
			s, ok := p.services[svc]
			if !ok {
				t.Errorf("Service %s is missing", svc)
				continue
			}
			var got []int32
			for _, sp := range s.Spec.Ports {
				got = append(got, sp.Port)
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), ports) {
				t.Errorf("Service %s ports %v, want %v", svc, got, ports)
			}
		}
		for svc, s := range p.services {
			var selected []string
			for name, w := range p.workloads {
				if len(s.Spec.Selector) > 0 && isSubset(s.Spec.Selector, w.template.Labels) {
					selected = append(selected, name)
				}
			}
			if len(selected) != 1 {
				t.Errorf("Service %s selects workloads %v, want exactly one", svc, selected)
				continue
			}
			w := p.workloads[selected[0]]
			for _, sp := range s.Spec.Ports {
				target, ok := resolveTarget(w.template, sp.TargetPort, sp.Port)
				if !ok {
					t.Errorf("Service %s port %d: targetPort %s is no containerPort of %s", svc, sp.Port, sp.TargetPort.String(), selected[0])
					continue
				}
				if !slices.Contains(listen[selected[0]], target) {
					t.Errorf("Service %s port %d: %s does not listen on %d (it listens on %v)", svc, sp.Port, selected[0], target, listen[selected[0]])
				}
				if mainPort[fmt.Sprintf("%s/%d", svc, sp.Port)] && target != listen[serveName][0] {
					t.Errorf("Service %s port %d goes to %d, not the main listener %d", svc, sp.Port, target, listen[serveName][0])
				}
				if svc == "nx-grafana" {
					if ui := loadServeConfig(t, p).UI.ListenAddress; ui == "" || portOf(t, ui) != target {
						t.Errorf("Service nx-grafana goes to %d, not the UI's own port (ui.listen_address %q)", target, ui)
					}
				}
			}
		}
	})
}

func resolveTarget(tpl corev1.PodTemplateSpec, tp intstr.IntOrString, port int32) (int32, bool) {
	for _, c := range tpl.Spec.Containers {
		for _, cp := range c.Ports {
			switch {
			case tp.Type == intstr.String && tp.StrVal == cp.Name,
				tp.Type == intstr.Int && tp.IntVal == cp.ContainerPort,
				tp.Type == intstr.Int && tp.IntVal == 0 && port == cp.ContainerPort:
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// TestConfigMapsLoad: every payload loads with nxwatcher's own parsers, as
// `nxwatcher check config`, `check rules`, `check agent-config` and
// `collector validate` would load it in the pod.
func TestConfigMapsLoad(t *testing.T) {
	eachProfile(t, func(t *testing.T, p *profile) {
		cfg := loadServeConfig(t, p)
		if got := cfg.Metrics.Parsed.RuleFiles; !slices.Equal(got, []string{"/etc/prometheus/alerts/*.yml"}) {
			t.Errorf("rule_files %v, want the design doc's /etc/prometheus/alerts/*.yml", got)
		}
		if p.name == "production" != cfg.Traces.Enabled {
			t.Errorf("traces.enabled = %v in %s", cfg.Traces.Enabled, p.name)
		}

		// The rule files, mounted at /etc/prometheus/alerts.
		dir := t.TempDir()
		var files []string
		for key, body := range p.configMap(t, "prometheus-alerts").Data {
			f := filepath.Join(dir, key)
			writeFile(t, f, body)
			files = append(files, f)
		}
		var out bytes.Buffer
		if err := ruler.CheckRuleFiles(&out, files...); err != nil {
			t.Errorf("prometheus-alerts: %v\n%s", err, out.String())
		}

		if _, err := agent.Parse([]byte(p.configMap(t, "promtail-config").Data["promtail.yaml"]), false); err != nil {
			t.Errorf("promtail-config: %v", err)
		}

		if cm, ok := p.configMaps["otel-collector-config"]; ok {
			f := filepath.Join(t.TempDir(), "otel-collector.yaml")
			writeFile(t, f, cm.Data["otel-collector.yaml"])
			if err := collector.Validate(context.Background(), collector.Options{Configs: []string{f}, Stderr: io.Discard, KeepGRPCLogger: true}); err != nil {
				t.Errorf("otel-collector-config: %v", err)
			}
		} else if p.name == "production" {
			t.Error("otel-collector-config is missing")
		}
	})
}

// TestMountedPaths: the files each config names are where the pod mounts
// them.
func TestMountedPaths(t *testing.T) {
	eachProfile(t, func(t *testing.T, p *profile) {
		serve := p.workloads[serveName].template.Spec
		c := serve.Containers[0]
		cfgFile := argValue(t, c.Args, "--config.file")
		mountOf(t, serve, c, filepath.Dir(cfgFile), "nx-watcher-config", p)
		mountOf(t, serve, c, "/etc/prometheus/alerts", "prometheus-alerts", p)
		data := argValue(t, c.Args, "--storage.path")
		if !hasMount(c, data, "data") {
			t.Errorf("--storage.path %s is not the PVC mount", data)
		}

		ag := p.workloads[agentName].template.Spec
		a := ag.Containers[0]
		mountOf(t, ag, a, filepath.Dir(argValue(t, a.Args, "-config.file")), "promtail-config", p)
		cfg, err := agent.Parse([]byte(p.configMap(t, "promtail-config").Data["promtail.yaml"]), false)
		if err != nil {
			t.Fatal(err)
		}
		posDir := filepath.Dir(cfg.Positions.Filename)
		found := false
		for _, m := range a.VolumeMounts {
			if m.MountPath != posDir {
				continue
			}
			v := volume(ag, m.Name)
			if v == nil || v.HostPath == nil || !strings.HasPrefix(v.HostPath.Path, "/var/lib/") || m.ReadOnly {
				t.Errorf("positions directory %s: volume %+v, want a writable hostPath under /var/lib", posDir, v)
			}
			found = true
		}
		if !found {
			t.Errorf("positions directory %s of promtail.yaml is not mounted: a pod restart would re-ship every file", posDir)
		}
		for _, host := range []string{"/var/log", "/var/lib/docker/containers"} {
			ok := false
			for _, m := range a.VolumeMounts {
				if v := volume(ag, m.Name); v != nil && v.HostPath != nil && v.HostPath.Path == host && m.MountPath == host && m.ReadOnly {
					ok = true
				}
			}
			if !ok {
				t.Errorf("agent: hostPath %s is not mounted read-only at the same path", host)
			}
		}
		var nodeName bool
		for _, e := range a.Env {
			if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
				nodeName = true
			}
		}
		if !nodeName {
			t.Error("agent: NODE_NAME does not come from spec.nodeName")
		}

		if w, ok := p.workloads[collectorName]; ok {
			cc := w.template.Spec.Containers[0]
			mountOf(t, w.template.Spec, cc, filepath.Dir(argValue(t, cc.Args, "--config")), "otel-collector-config", p)
		}
	})
}

func mountOf(t *testing.T, spec corev1.PodSpec, c corev1.Container, dir, configMap string, p *profile) {
	t.Helper()
	want := p.configMap(t, configMap).Name
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir {
			if v := volume(spec, m.Name); v != nil && v.ConfigMap != nil && v.ConfigMap.Name == want {
				return
			}
		}
	}
	t.Errorf("%s: ConfigMap %s is not mounted at %s", c.Name, want, dir)
}

func hasMount(c corev1.Container, path, volumeName string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path && m.Name == volumeName {
			return true
		}
	}
	return false
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// TestServeStatefulSet: one PVC on the design doc's storage class, probes on
// the health endpoints, time for a clean TSDB close.
func TestServeStatefulSet(t *testing.T) {
	wantSize := map[string]string{"staging": "20Gi", "production": "25Gi"}
	eachProfile(t, func(t *testing.T, p *profile) {
		ss := p.workloads[serveName].obj.(*appsv1.StatefulSet)
		if *ss.Spec.Replicas != 1 {
			t.Errorf("replicas %d", *ss.Spec.Replicas)
		}
		if len(ss.Spec.VolumeClaimTemplates) != 1 {
			t.Fatalf("%d volumeClaimTemplates, want 1", len(ss.Spec.VolumeClaimTemplates))
		}
		pvc := ss.Spec.VolumeClaimTemplates[0]
		if sc := pvc.Spec.StorageClassName; sc == nil || *sc != "csi-sc-vnpaycloud" {
			t.Errorf("storageClassName %v", sc)
		}
		if got := pvc.Spec.Resources.Requests.Storage().String(); got != wantSize[p.name] {
			t.Errorf("PVC size %s, want %s", got, wantSize[p.name])
		}
		spec := ss.Spec.Template.Spec
		if g := spec.TerminationGracePeriodSeconds; g == nil || *g < 60 {
			t.Errorf("terminationGracePeriodSeconds %v, want ≥ 60 for a clean TSDB close", g)
		}
		c := spec.Containers[0]
		for probe, want := range map[string]struct {
			p    *corev1.Probe
			path string
		}{"readiness": {c.ReadinessProbe, "/-/ready"}, "liveness": {c.LivenessProbe, "/-/healthy"}, "startup": {c.StartupProbe, "/-/healthy"}} {
			if want.p == nil || want.p.HTTPGet == nil || want.p.HTTPGet.Path != want.path || want.p.HTTPGet.Port.StrVal != "http" {
				t.Errorf("%s probe %+v, want GET %s on http", probe, want.p, want.path)
			}
		}
		if spec.ServiceAccountName != serveName {
			t.Errorf("serviceAccountName %q", spec.ServiceAccountName)
		}
		if p.services[ss.Spec.ServiceName] == nil || p.services[ss.Spec.ServiceName].Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("serviceName %s is not a headless Service", ss.Spec.ServiceName)
		}
	})
}

// TestSecurityContext: non-root, read-only root filesystem, no capabilities,
// no privilege escalation, memory limits; the agent alone runs as UID 0 to
// read root-owned 0640 log files, still without any capability.
// TestServeMemoryLimit: serve's GOMEMLIMIT (ADR 0083) parses as the Go
// runtime reads it, stays under the container limit, and in staging leaves
// the agent's request inside the 256 MiB budget of serve plus one agent.
func TestServeMemoryLimit(t *testing.T) {
	eachProfile(t, func(t *testing.T, p *profile) {
		c := p.workloads[serveName].template.Spec.Containers[0]
		var limit string
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				limit = e.Value
			}
		}
		m := regexp.MustCompile(`^(\d+)(MiB|GiB)$`).FindStringSubmatch(limit)
		if m == nil {
			t.Fatalf("GOMEMLIMIT %q, want a number of MiB or GiB", limit)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		goLimit := n << 20
		if m[2] == "GiB" {
			goLimit = n << 30
		}
		if max := c.Resources.Limits.Memory().Value(); goLimit > max*9/10 {
			t.Errorf("GOMEMLIMIT %s is above 90%% of the memory limit %s", limit, c.Resources.Limits.Memory())
		}
		if p.name == "staging" {
			agentReq := p.workloads[agentName].template.Spec.Containers[0].Resources.Requests.Memory().Value()
			if goLimit+agentReq > 256<<20 {
				t.Errorf("GOMEMLIMIT %s + agent request %d MiB > the 256 MiB staging budget", limit, agentReq>>20)
			}
		}
	})
}

func TestSecurityContext(t *testing.T) {
	eachProfile(t, func(t *testing.T, p *profile) {
		for name, w := range p.workloads {
			spec := w.template.Spec
			for _, c := range spec.Containers {
				sc := c.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s/%s: root filesystem not read-only", name, c.Name)
				}
				if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s/%s: privilege escalation not off", name, c.Name)
				}
				if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
					t.Errorf("%s/%s: capabilities %+v, want drop [ALL] and none added", name, c.Name, sc)
				}
				if sc != nil && sc.Privileged != nil && *sc.Privileged {
					t.Errorf("%s/%s: privileged", name, c.Name)
				}
				if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
					t.Errorf("%s/%s: resources %+v, want cpu and memory requests and a memory limit", name, c.Name, c.Resources)
				}
				if c.ReadinessProbe == nil {
					t.Errorf("%s/%s: no readiness probe", name, c.Name)
				}
			}
			psc := spec.SecurityContext
			if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccomp profile not RuntimeDefault", name)
			}
			nonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot && psc.RunAsUser != nil && *psc.RunAsUser != 0
			if name == agentName {
				if nonRoot {
					t.Errorf("%s runs as non-root: it cannot read root-owned 0640 container logs", name)
				}
				continue
			}
			if !nonRoot {
				t.Errorf("%s: not runAsNonRoot with a non-zero runAsUser", name)
			}
			for _, v := range spec.Volumes {
				if v.HostPath != nil && name != nodeExporter {
					t.Errorf("%s mounts hostPath %s", name, v.HostPath.Path)
				}
			}
		}
	})
}

// TestGrafanaSecret: the UI's admin login comes from the design doc's
// grafana-secret keys, under the environment variables Grafana reads.
func TestGrafanaSecret(t *testing.T) {
	want := map[string]string{"GF_SECURITY_ADMIN_USER": "admin-user", "GF_SECURITY_ADMIN_PASSWORD": "admin-password"}
	eachProfile(t, func(t *testing.T, p *profile) {
		got := map[string]string{}
		for name, w := range p.workloads {
			for _, c := range w.template.Spec.Containers {
				for _, e := range c.Env {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						continue
					}
					ref := e.ValueFrom.SecretKeyRef
					if name != serveName || ref.Name != grafanaSecret {
						t.Errorf("%s: env %s from Secret %s, want only the serve pod reading %s", name, e.Name, ref.Name, grafanaSecret)
					}
					got[e.Name] = ref.Key
				}
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("Secret keys %v, want %v", got, want)
		}
	})
}

// TestCopiesAreIdentical: the ConfigMap sources are byte-identical copies
// of the files their owners maintain (kustomize cannot read outside its
// root), and the prometheus.yml keeps every job of the design doc's.
func TestCopiesAreIdentical(t *testing.T) {
	for copyPath, orig := range map[string]string{
		"base/files/promtail.yaml":                      "../agent/promtail.yaml",
		"base/files/alerts.yml":                         "../rules/bana.rules.yml",
		"overlays/production/files/otel-collector.yaml": "../collector/otel-collector.yaml",
	} {
		a, b := readFile(t, copyPath), readFile(t, orig)
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: cp deploy/%s deploy/kubernetes/%s", copyPath, orig, strings.TrimPrefix(orig, "../"), copyPath)
		}
	}

	logger := promslog.NewNopLogger()
	ours, err := promconfig.LoadFile("base/files/prometheus.yml", false, logger)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := promconfig.LoadFile("../prometheus/prometheus.yml", false, logger)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*promconfig.ScrapeConfig{}
	for _, sc := range ours.ScrapeConfigs {
		byName[sc.JobName] = sc
	}
	for _, sc := range doc.ScrapeConfigs {
		if !reflect.DeepEqual(byName[sc.JobName], sc) {
			t.Errorf("job %s of deploy/prometheus/prometheus.yml is missing or changed in base/files/prometheus.yml", sc.JobName)
		}
	}
	for _, job := range []string{"kubelet", "cadvisor", "kube-state-metrics", "node-exporter", "nx-watcher"} {
		if byName[job] == nil {
			t.Errorf("job %s is missing", job)
		}
	}
	if !reflect.DeepEqual(ours.GlobalConfig, doc.GlobalConfig) || !slices.Equal(ours.RuleFiles, doc.RuleFiles) {
		t.Error("global or rule_files differ from the design doc's prometheus.yml")
	}
}

// TestAlertRulesHaveTheirMetrics: the metrics of the design doc's rules come
// from a job here (the doc's own config scrapes neither).
func TestAlertRulesHaveTheirMetrics(t *testing.T) {
	rules := string(readFile(t, "base/files/alerts.yml"))
	prom := string(readFile(t, "base/files/prometheus.yml"))
	for metric, job := range map[string]string{
		"kube_pod_container_status_restarts_total": "kube-state-metrics.nx-watcher.svc.cluster.local:8080",
		"kubelet_volume_stats_used_bytes":          "job_name: kubelet",
	} {
		if !strings.Contains(rules, metric) {
			t.Errorf("rules no longer use %s; update this test", metric)
		}
		if !strings.Contains(prom, job) {
			t.Errorf("%s: no scrape job (%s)", metric, job)
		}
	}
}

func (p *profile) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	cm, ok := p.configMaps[name]
	if !ok {
		t.Fatalf("ConfigMap %s is missing in %s", name, p.name)
	}
	return cm
}

// loadServeConfig writes nx-watcher-config as the pod mounts it and loads
// it with config.Check (`nxwatcher check config`), then config.LoadFile.
func loadServeConfig(t *testing.T, p *profile) *config.Config {
	t.Helper()
	dir := t.TempDir()
	for key, body := range p.configMap(t, "nx-watcher-config").Data {
		writeFile(t, filepath.Join(dir, key), body)
	}
	f := filepath.Join(dir, "nxwatcher.yml")
	logger := promslog.NewNopLogger()
	kind, warnings, err := config.Check(f, logger)
	if err != nil || kind != config.KindServe {
		t.Fatalf("%s nx-watcher-config: nxwatcher check config: %s: %v", p.name, kind, err)
	}
	for _, w := range warnings {
		// The rule files are in another ConfigMap, mounted at their
		// absolute path in the pod only; TestConfigMapsLoad checks them.
		if !strings.Contains(w, "/etc/prometheus/alerts") {
			t.Errorf("check config warning: %s", w)
		}
	}
	cfg, err := config.LoadFile(f, logger)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func argValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s= in %v", flag, args)
	return ""
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n)
}

func isSubset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
