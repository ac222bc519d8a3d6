package demo

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// exporter is one simulated /metrics endpoint on its own 127.0.0.1 listener.
type exporter struct {
	job      string
	path     string
	instance string
	labels   map[string]string
	reg      *prometheus.Registry
	ln       net.Listener
	srv      *http.Server
	// down makes /metrics answer 503 (the scrape fails: up == 0).
	down atomic.Bool
}

func (e *exporter) addr() string { return e.ln.Addr().String() }

// The bana platform's pods, as the design doc's namespaces hold them.
const (
	nsInternal   = "nx-internal"
	nsBackend    = "nx-backend"
	nsPersistent = "nx-persistent"
	nsBroker     = "nx-broker"
	nodeA        = "pool-default-7f9c2"
	nodeB        = "pool-default-b41d8"
)

type pod struct {
	ns, name, container, node string
	cpuLimit, memLimit        float64 // cores, bytes
	cpuBase, memBase          float64
}

var pods = []pod{
	{nsInternal, "traefik-6c9d8b7f5-x2k4q", "traefik", nodeA, 0.5, 256 << 20, 0.04, 70 << 20},
	{nsBackend, "identity-7f8b9c6d5-qp7zm", "identity", nodeA, 0.5, 512 << 20, 0.05, 180 << 20},
	{nsBackend, "backend-5d4c8b7a9-h2lxw", "backend", nodeB, 1, 1 << 30, 0.12, 340 << 20},
	{nsBackend, "backend-5d4c8b7a9-t9vnk", "backend", nodeA, 1, 1 << 30, 0.11, 330 << 20},
	{nsBackend, "bullmq-worker-6b7d9f8c4-m3zrd", "bullmq-worker", nodeB, 0.5, 512 << 20, 0.06, 210 << 20},
	{nsPersistent, "postgresql-0", "postgresql", nodeB, 2, 2 << 30, 0.2, 900 << 20},
	{nsBroker, "redis-0", "redis", nodeA, 0.5, 1 << 30, 0.03, 400 << 20},
	{nsBroker, "nx-kafka-0", "kafka", nodeA, 1, 2 << 30, 0.1, 1200 << 20},
	{nsBroker, "nx-kafka-1", "kafka", nodeB, 1, 2 << 30, 0.1, 1150 << 20},
	{nsBroker, "nx-kafka-2", "kafka", nodeB, 1, 2 << 30, 0.1, 1180 << 20},
}

// identityPod is the pod that crash-loops during its incident.
const identityPod = "identity-7f8b9c6d5-qp7zm"

// route is one kind of request through Traefik.
type route struct {
	service  string // the backend service (Loki/Tempo service name)
	traefik  string // Traefik v3's service label
	method   string
	path     string
	weight   float64
	medianMS float64
}

var routes = []route{
	{"identity", "nx-backend-identity-3000@kubernetes", "POST", "/auth/login", 0.12, 60},
	{"identity", "nx-backend-identity-3000@kubernetes", "GET", "/auth/session", 0.23, 12},
	{"backend", "nx-backend-backend-3000@kubernetes", "GET", "/api/orders", 0.25, 45},
	{"backend", "nx-backend-backend-3000@kubernetes", "POST", "/api/orders", 0.10, 90},
	{"backend", "nx-backend-backend-3000@kubernetes", "GET", "/api/products", 0.20, 30},
	{"backend", "nx-backend-backend-3000@kubernetes", "POST", "/api/reports", 0.05, 180},
	{"web", "nx-frontend-web-80@kubernetes", "GET", "/", 0.05, 5},
}

var (
	kafkaTopics = []string{"orders", "payments", "notifications"}
	queues      = []string{"email", "notifications", "payments-sync", "reports"}
	databases   = []string{"bana", "identity"}
	redisCmds   = []string{"get", "set", "setex", "del", "expire", "hget", "hset", "evalsha", "zadd", "brpoplpush"}
)

// request is one simulated request, handed to the log and trace emitters.
type request struct {
	route    route
	code     int
	start    time.Time
	duration time.Duration
}

// platform is the simulated bana platform: the exporters and the state
// behind their metrics, advanced by tick.
type platform struct {
	opts      Options
	exporters []*exporter
	byJob     map[string][]*exporter
	rng       *rand.Rand
	mu        sync.Mutex // guards rng and the carry-over state below
	start     time.Time

	carry float64 // fractional requests left from the last tick

	traefik struct {
		requests *prometheus.CounterVec
		duration *prometheus.HistogramVec
		epReq    *prometheus.CounterVec
		epDur    *prometheus.HistogramVec
		open     *prometheus.GaugeVec
		reloads  prometheus.Counter
	}
	apps map[string]*appMetrics // by backend service

	pg struct {
		up, maxConn                 prometheus.Gauge
		activity, maxTx             *prometheus.GaugeVec
		numBackends, size           *prometheus.GaugeVec
		hit, read, commit, rollback *prometheus.CounterVec
		fetched, inserted, updated  *prometheus.CounterVec
		deadlocks, conflicts        *prometheus.CounterVec
		stmtCalls, stmtSeconds      *prometheus.CounterVec
		sizes                       map[string]float64
	}
	redis struct {
		up, used, max, clients, blocked prometheus.Gauge
		processed, hits, misses         prometheus.Counter
		evicted, expired                prometheus.Counter
		cmds                            *prometheus.CounterVec
		keys                            *prometheus.GaugeVec
	}
	kafka []*kafkaBroker
	lag   struct {
		lag, offset *prometheus.GaugeVec
		brokers     prometheus.Gauge
		offsets     map[string]float64
	}
	nodes   []*nodeMetrics
	kubelet struct {
		used, capacity *prometheus.GaugeVec
		cpu            *prometheus.CounterVec
		mem            *prometheus.GaugeVec
	}
	ksm struct {
		info, limits, phase *prometheus.GaugeVec
		restarts            *prometheus.CounterVec
	}
	bull struct {
		gauges map[string]*prometheus.GaugeVec
		depth  map[string]float64
	}
	pgUsed float64 // bytes on the PostgreSQL PVC
}

type appMetrics struct {
	http    *prometheus.HistogramVec
	lag     prometheus.Gauge
	rss     prometheus.Gauge
	cpu     prometheus.Counter
	memBase float64
}

type kafkaBroker struct {
	underRep, partitions, leaders, controller, offline prometheus.Gauge
	msgIn, bytesIn, bytesOut                           *prometheus.CounterVec
}

type nodeMetrics struct {
	name                  string
	cores                 int
	cpu                   *prometheus.CounterVec
	memTotal, memAvail    prometheus.Gauge
	fsAvail, fsSize       *prometheus.GaugeVec
	diskRead, diskWritten *prometheus.CounterVec
	netRx, netTx          *prometheus.CounterVec
	load1, load5          prometheus.Gauge
	memUsedFrac           float64
}

func newPlatform(opts Options) *platform {
	p := &platform{
		opts:  opts,
		byJob: map[string][]*exporter{},
		rng:   rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6e78)),
		start: time.Now(),
		apps:  map[string]*appMetrics{},
	}
	p.buildTraefik()
	for _, svc := range []struct{ name, pod string }{
		{"identity", identityPod}, {"backend", "backend-5d4c8b7a9-h2lxw"}, {"bullmq-worker", "bullmq-worker-6b7d9f8c4-m3zrd"},
	} {
		p.buildApp(svc.name, svc.pod)
	}
	p.buildPostgres()
	p.buildRedis()
	p.buildKafka()
	p.buildNodes()
	p.buildKube()
	p.buildBull()
	return p
}

func (p *platform) add(job, path, instance string, labels map[string]string) *exporter {
	e := &exporter{job: job, path: path, instance: instance, labels: labels, reg: prometheus.NewRegistry()}
	p.exporters = append(p.exporters, e)
	p.byJob[job] = append(p.byJob[job], e)
	return e
}

// listen opens every exporter's listener and starts serving.
func (p *platform) listen() error {
	for _, e := range p.exporters {
		if e.ln != nil {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.close()
			return fmt.Errorf("demo exporter %s: %w", e.job, err)
		}
		e.ln = ln
		mux := http.NewServeMux()
		h := promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{})
		e := e
		mux.HandleFunc(e.path, func(w http.ResponseWriter, r *http.Request) {
			if e.down.Load() {
				http.Error(w, "connection refused by crash-looping container", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
		// cAdvisor shares the kubelet's listener, as on a real node.
		for _, o := range p.exporters {
			if o != e && o.ln == nil && o.job == "cadvisor" && e.job == "kubelet" {
				o.ln = ln
				hh := promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{})
				mux.Handle(o.path, hh)
			}
		}
		e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = e.srv.Serve(ln) }()
	}
	return nil
}

func (p *platform) close() {
	for _, e := range p.exporters {
		if e.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := e.srv.Shutdown(ctx); err != nil {
				// A scrape's connection accepted just now counts as busy
				// for 5 s; close it rather than leave it open.
				_ = e.srv.Close()
			}
			cancel()
		} else if e.ln != nil {
			_ = e.ln.Close()
		}
	}
}

// scrapeConfig is the prometheus.yml scrape_configs body for the exporters.
func (p *platform) scrapeConfig(interval time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\nscrape_configs:\n",
		promDuration(interval), promDuration(min(interval, 10*time.Second)), promDuration(interval))
	seen := map[string]bool{}
	for _, e := range p.exporters {
		if seen[e.job] {
			continue
		}
		seen[e.job] = true
		fmt.Fprintf(&b, "  - job_name: %s\n    metrics_path: %s\n    static_configs:\n", e.job, e.path)
		for _, t := range p.byJob[e.job] {
			fmt.Fprintf(&b, "      - targets: ['%s']\n        labels:\n          instance: '%s'\n", t.addr(), t.instance)
			for k, v := range t.labels {
				fmt.Fprintf(&b, "          %s: '%s'\n", k, v)
			}
		}
	}
	return b.String()
}

func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// ---- builders ----

func (p *platform) buildTraefik() {
	e := p.add("traefik", "/metrics", "nx-traefik.nx-internal:8080", map[string]string{"namespace": nsInternal, "pod": pods[0].name})
	lbl := []string{"code", "method", "protocol", "service"}
	t := &p.traefik
	t.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traefik_service_requests_total", Help: "How many HTTP requests processed on a service, partitioned by status code, protocol, and method."}, lbl)
	t.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "traefik_service_request_duration_seconds", Help: "How long it took to process the request on a service, partitioned by status code, protocol, and method.", Buckets: []float64{0.1, 0.3, 1.2, 5}}, lbl)
	elbl := []string{"code", "entrypoint", "method", "protocol"}
	t.epReq = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traefik_entrypoint_requests_total", Help: "How many HTTP requests processed on an entrypoint, partitioned by status code, protocol, and method."}, elbl)
	t.epDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "traefik_entrypoint_request_duration_seconds", Help: "How long it took to process the request on an entrypoint, partitioned by status code, protocol, and method.", Buckets: []float64{0.1, 0.3, 1.2, 5}}, elbl)
	t.open = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "traefik_open_connections", Help: "How many open connections exist, by entryPoint and protocol."}, []string{"entrypoint", "protocol"})
	t.reloads = prometheus.NewCounter(prometheus.CounterOpts{Name: "traefik_config_reloads_total", Help: "Config reloads."})
	e.reg.MustRegister(t.requests, t.duration, t.epReq, t.epDur, t.open, t.reloads)
	t.reloads.Add(3)
	// Every series a panel or rule reads exists from the first scrape.
	for _, r := range routes {
		for _, code := range []string{"200", "500"} {
			t.requests.WithLabelValues(code, r.method, "http", r.traefik)
			t.duration.WithLabelValues(code, r.method, "http", r.traefik)
		}
	}
}

func (p *platform) buildApp(service, podName string) {
	e := p.add("nx-backend", "/metrics", podName+":3000", map[string]string{"service": service, "pod": podName, "namespace": nsBackend})
	m := &appMetrics{
		http: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "Duration of HTTP requests in seconds",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}, []string{"method", "route", "status_code"}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodejs_eventloop_lag_seconds", Help: "Lag of event loop in seconds."}),
		rss: prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_resident_memory_bytes", Help: "Resident memory size in bytes."}),
		cpu: prometheus.NewCounter(prometheus.CounterOpts{Name: "process_cpu_seconds_total", Help: "Total user and system CPU time spent in seconds."}),
	}
	m.memBase = 200 << 20
	e.reg.MustRegister(m.http, m.lag, m.rss, m.cpu)
	if service == "bullmq-worker" {
		m.http.WithLabelValues("GET", "/health", "200")
	}
	p.apps[service] = m
}

func (p *platform) buildPostgres() {
	e := p.add("postgresql", "/metrics", "nx-pg-exporter.nx-persistent:9187", map[string]string{"namespace": nsPersistent})
	g := &p.pg
	gauge := func(name, help string) prometheus.Gauge {
		x := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		e.reg.MustRegister(x)
		return x
	}
	gaugeVec := func(name, help string, l ...string) *prometheus.GaugeVec {
		x := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, l)
		e.reg.MustRegister(x)
		return x
	}
	counterVec := func(name, help string, l ...string) *prometheus.CounterVec {
		x := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, l)
		e.reg.MustRegister(x)
		return x
	}
	g.up = gauge("pg_up", "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).")
	g.maxConn = gauge("pg_settings_max_connections", "Sets the maximum number of concurrent connections.")
	g.activity = gaugeVec("pg_stat_activity_count", "number of connections in this state", "datname", "state", "usename", "application_name")
	g.maxTx = gaugeVec("pg_stat_activity_max_tx_duration", "max duration in seconds any active transaction has been running", "datname", "state", "usename", "application_name")
	g.numBackends = gaugeVec("pg_stat_database_numbackends", "Number of backends currently connected to this database.", "datid", "datname")
	g.size = gaugeVec("pg_database_size_bytes", "Disk space used by the database", "datname")
	g.hit = counterVec("pg_stat_database_blks_hit", "Number of times disk blocks were found already in the buffer cache", "datid", "datname")
	g.read = counterVec("pg_stat_database_blks_read", "Number of disk blocks read in this database", "datid", "datname")
	g.commit = counterVec("pg_stat_database_xact_commit", "Number of transactions in this database that have been committed", "datid", "datname")
	g.rollback = counterVec("pg_stat_database_xact_rollback", "Number of transactions in this database that have been rolled back", "datid", "datname")
	g.fetched = counterVec("pg_stat_database_tup_fetched", "Number of rows fetched by queries in this database", "datid", "datname")
	g.inserted = counterVec("pg_stat_database_tup_inserted", "Number of rows inserted by queries in this database", "datid", "datname")
	g.updated = counterVec("pg_stat_database_tup_updated", "Number of rows updated by queries in this database", "datid", "datname")
	g.deadlocks = counterVec("pg_stat_database_deadlocks", "Number of deadlocks detected in this database", "datid", "datname")
	g.conflicts = counterVec("pg_stat_database_conflicts", "Number of queries canceled due to conflicts with recovery in this database", "datid", "datname")
	g.stmtCalls = counterVec("pg_stat_statements_calls_total", "Number of times executed", "user", "datname", "queryid")
	g.stmtSeconds = counterVec("pg_stat_statements_seconds_total", "Total time spent in the statement, in seconds", "user", "datname", "queryid")
	g.up.Set(1)
	g.maxConn.Set(100)
	g.sizes = map[string]float64{"bana": 6.2e9, "identity": 0.8e9}
	for i, db := range databases {
		id := fmt.Sprint(16384 + i)
		for _, c := range []*prometheus.CounterVec{g.hit, g.read, g.commit, g.rollback, g.fetched, g.inserted, g.updated, g.deadlocks, g.conflicts} {
			c.WithLabelValues(id, db)
		}
	}
	p.pgUsed = 14e9
}

func (p *platform) buildRedis() {
	e := p.add("redis", "/metrics", "nx-redis-exporter.nx-broker:9121", map[string]string{"namespace": nsBroker})
	r := &p.redis
	g := func(name, help string) prometheus.Gauge {
		x := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		e.reg.MustRegister(x)
		return x
	}
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		e.reg.MustRegister(x)
		return x
	}
	r.up = g("redis_up", "Information about the Redis instance")
	r.used = g("redis_memory_used_bytes", "memory_used_bytes metric")
	r.max = g("redis_memory_max_bytes", "memory_max_bytes metric")
	r.clients = g("redis_connected_clients", "connected_clients metric")
	r.blocked = g("redis_blocked_clients", "blocked_clients metric")
	r.processed = c("redis_commands_processed_total", "commands_processed_total metric")
	r.hits = c("redis_keyspace_hits_total", "keyspace_hits_total metric")
	r.misses = c("redis_keyspace_misses_total", "keyspace_misses_total metric")
	r.evicted = c("redis_evicted_keys_total", "evicted_keys_total metric")
	r.expired = c("redis_expired_keys_total", "expired_keys_total metric")
	r.cmds = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redis_commands_total", Help: "Total number of calls per command"}, []string{"cmd"})
	r.keys = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "redis_db_keys", Help: "Total number of keys by DB"}, []string{"db"})
	e.reg.MustRegister(r.cmds, r.keys)
	r.up.Set(1)
	r.max.Set(512 << 20)
	for _, cmd := range redisCmds {
		r.cmds.WithLabelValues(cmd)
	}
}

func (p *platform) buildKafka() {
	for i := range 3 {
		e := p.add("kafka", "/metrics", fmt.Sprintf("nx-kafka-%d.nx-kafka-headless.nx-broker:9404", i), map[string]string{"namespace": nsBroker, "pod": fmt.Sprintf("nx-kafka-%d", i)})
		b := &kafkaBroker{}
		g := func(name, help string) prometheus.Gauge {
			x := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
			e.reg.MustRegister(x)
			return x
		}
		cv := func(name, help string) *prometheus.CounterVec {
			x := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"topic"})
			e.reg.MustRegister(x)
			return x
		}
		b.underRep = g("kafka_server_replicamanager_underreplicatedpartitions", "Attribute exposed for management kafka.server:name=UnderReplicatedPartitions,type=ReplicaManager,attribute=Value")
		b.partitions = g("kafka_server_replicamanager_partitioncount", "Attribute exposed for management kafka.server:name=PartitionCount,type=ReplicaManager,attribute=Value")
		b.leaders = g("kafka_server_replicamanager_leadercount", "Attribute exposed for management kafka.server:name=LeaderCount,type=ReplicaManager,attribute=Value")
		b.controller = g("kafka_controller_kafkacontroller_activecontrollercount", "Attribute exposed for management kafka.controller:name=ActiveControllerCount,type=KafkaController,attribute=Value")
		b.offline = g("kafka_controller_kafkacontroller_offlinepartitionscount", "Attribute exposed for management kafka.controller:name=OfflinePartitionsCount,type=KafkaController,attribute=Value")
		b.msgIn = cv("kafka_server_brokertopicmetrics_messagesin_total", "Attribute exposed for management kafka.server:name=MessagesInPerSec,type=BrokerTopicMetrics,attribute=Count")
		b.bytesIn = cv("kafka_server_brokertopicmetrics_bytesin_total", "Attribute exposed for management kafka.server:name=BytesInPerSec,type=BrokerTopicMetrics,attribute=Count")
		b.bytesOut = cv("kafka_server_brokertopicmetrics_bytesout_total", "Attribute exposed for management kafka.server:name=BytesOutPerSec,type=BrokerTopicMetrics,attribute=Count")
		b.partitions.Set(18)
		b.leaders.Set(6)
		if i == 0 {
			b.controller.Set(1)
		}
		for _, t := range kafkaTopics {
			b.msgIn.WithLabelValues(t)
			b.bytesIn.WithLabelValues(t)
			b.bytesOut.WithLabelValues(t)
		}
		p.kafka = append(p.kafka, b)
	}
	e := p.add("kafka-exporter", "/metrics", "nx-kafka-exporter.nx-broker:9308", map[string]string{"namespace": nsBroker})
	l := &p.lag
	lbl := []string{"consumergroup", "topic", "partition"}
	l.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kafka_consumergroup_lag", Help: "Current Approximate Lag of a ConsumerGroup at Topic/Partition"}, lbl)
	l.offset = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kafka_consumergroup_current_offset", Help: "Current Offset of a ConsumerGroup at Topic/Partition"}, lbl)
	l.brokers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "kafka_brokers", Help: "Number of Brokers in the Kafka Cluster."})
	e.reg.MustRegister(l.lag, l.offset, l.brokers)
	l.brokers.Set(3)
	l.offsets = map[string]float64{}
}

func (p *platform) buildNodes() {
	for i, name := range []string{nodeA, nodeB} {
		e := p.add("node-exporter", "/metrics", fmt.Sprintf("%s:9100", name), map[string]string{"node": name})
		n := &nodeMetrics{name: name, cores: 4, memUsedFrac: 0.55 + 0.1*float64(i)}
		info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "node_uname_info", Help: "Labeled system information as provided by the uname system call."}, []string{"domainname", "machine", "nodename", "release", "sysname", "version"})
		info.WithLabelValues("(none)", "x86_64", name, "6.1.0-28-amd64", "Linux", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1").Set(1)
		n.cpu = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "node_cpu_seconds_total", Help: "Seconds the CPUs spent in each mode."}, []string{"cpu", "mode"})
		n.memTotal = prometheus.NewGauge(prometheus.GaugeOpts{Name: "node_memory_MemTotal_bytes", Help: "Memory information field MemTotal_bytes."})
		n.memAvail = prometheus.NewGauge(prometheus.GaugeOpts{Name: "node_memory_MemAvailable_bytes", Help: "Memory information field MemAvailable_bytes."})
		fl := []string{"device", "fstype", "mountpoint"}
		n.fsAvail = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "node_filesystem_avail_bytes", Help: "Filesystem space available to non-root users in bytes."}, fl)
		n.fsSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "node_filesystem_size_bytes", Help: "Filesystem size in bytes."}, fl)
		n.diskRead = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "node_disk_read_bytes_total", Help: "The total number of bytes read successfully."}, []string{"device"})
		n.diskWritten = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "node_disk_written_bytes_total", Help: "The total number of bytes written successfully."}, []string{"device"})
		n.netRx = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "node_network_receive_bytes_total", Help: "Network device statistic receive_bytes."}, []string{"device"})
		n.netTx = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "node_network_transmit_bytes_total", Help: "Network device statistic transmit_bytes."}, []string{"device"})
		n.load1 = prometheus.NewGauge(prometheus.GaugeOpts{Name: "node_load1", Help: "1m load average."})
		n.load5 = prometheus.NewGauge(prometheus.GaugeOpts{Name: "node_load5", Help: "5m load average."})
		e.reg.MustRegister(info, n.cpu, n.memTotal, n.memAvail, n.fsAvail, n.fsSize, n.diskRead, n.diskWritten, n.netRx, n.netTx, n.load1, n.load5)
		n.memTotal.Set(16 << 30)
		n.fsSize.WithLabelValues("/dev/sda1", "ext4", "/").Set(100e9)
		n.fsSize.WithLabelValues("/dev/sdb", "ext4", "/var/lib/kubelet").Set(200e9)
		n.fsSize.WithLabelValues("tmpfs", "tmpfs", "/run").Set(1.6e9)
		n.fsAvail.WithLabelValues("tmpfs", "tmpfs", "/run").Set(1.5e9)
		p.nodes = append(p.nodes, n)
	}
}

func (p *platform) buildKube() {
	kl := p.add("kubelet", "/metrics", nodeA+":10250", map[string]string{"node": nodeA})
	ca := p.add("cadvisor", "/metrics/cadvisor", nodeA+":10250", map[string]string{"node": nodeA})
	k := &p.kubelet
	vl := []string{"namespace", "persistentvolumeclaim"}
	k.used = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubelet_volume_stats_used_bytes", Help: "Number of used bytes in the volume"}, vl)
	k.capacity = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubelet_volume_stats_capacity_bytes", Help: "Capacity in bytes of the volume"}, vl)
	kl.reg.MustRegister(k.used, k.capacity)
	cl := []string{"namespace", "pod", "container", "cpu"}
	k.cpu = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "container_cpu_usage_seconds_total", Help: "Cumulative cpu time consumed in seconds."}, cl)
	k.mem = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "container_memory_working_set_bytes", Help: "Current working set in bytes."}, []string{"namespace", "pod", "container"})
	ca.reg.MustRegister(k.cpu, k.mem)

	ksm := p.add("kube-state-metrics", "/metrics", "kube-state-metrics.kube-system:8080", nil)
	s := &p.ksm
	s.info = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kube_pod_info", Help: "Information about pod."}, []string{"namespace", "pod", "node", "host_ip", "pod_ip", "created_by_kind", "uid"})
	s.limits = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kube_pod_container_resource_limits", Help: "The number of requested limit resource by a container."}, []string{"namespace", "pod", "container", "node", "resource", "unit"})
	s.phase = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kube_pod_status_phase", Help: "The pods current phase."}, []string{"namespace", "pod", "uid", "phase"})
	s.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kube_pod_container_status_restarts_total", Help: "The number of container restarts per container."}, []string{"namespace", "pod", "uid", "container"})
	ksm.reg.MustRegister(s.info, s.limits, s.phase, s.restarts)
	for i, pd := range pods {
		uid := fmt.Sprintf("5f0c%04x-8d1e-4b5a-9c2f-%012x", i, i*7919)
		host := "10.0.1.11"
		if pd.node == nodeB {
			host = "10.0.1.12"
		}
		s.info.WithLabelValues(pd.ns, pd.name, pd.node, host, fmt.Sprintf("10.244.%d.%d", i%2+1, 10+i), "ReplicaSet", uid).Set(1)
		s.limits.WithLabelValues(pd.ns, pd.name, pd.container, pd.node, "cpu", "core").Set(pd.cpuLimit)
		s.limits.WithLabelValues(pd.ns, pd.name, pd.container, pd.node, "memory", "byte").Set(pd.memLimit)
		for _, ph := range []string{"Pending", "Running", "Succeeded", "Failed", "Unknown"} {
			v := 0.0
			if ph == "Running" {
				v = 1
			}
			s.phase.WithLabelValues(pd.ns, pd.name, uid, ph).Set(v)
		}
		s.restarts.WithLabelValues(pd.ns, pd.name, uid, pd.container)
	}
	for _, pvc := range []struct {
		ns, name string
		capacity float64
	}{{nsPersistent, "data-postgresql-0", 20e9}, {nsBroker, "data-redis-0", 5e9}, {nsBroker, "data-nx-kafka-0", 50e9}, {nsBroker, "data-nx-kafka-1", 50e9}, {nsBroker, "data-nx-kafka-2", 50e9}} {
		k.capacity.WithLabelValues(pvc.ns, pvc.name).Set(pvc.capacity)
		k.used.WithLabelValues(pvc.ns, pvc.name).Set(pvc.capacity * 0.4)
	}
}

func (p *platform) buildBull() {
	e := p.add("bullmq", "/metrics", "bullmq-exporter.nx-backend:3000", map[string]string{"namespace": nsBackend})
	p.bull.gauges = map[string]*prometheus.GaugeVec{}
	for _, n := range []struct{ name, help string }{
		{"active_total", "Number of jobs in processing"},
		{"wait_total", "Number of pending jobs"},
		{"waiting_children_total", "Number of pending children jobs"},
		{"prioritized_total", "Number of prioritized jobs"},
		{"delayed_total", "Number of delayed jobs"},
		{"failed_total", "Number of failed jobs"},
		{"completed_total", "Number of completed jobs (last 1 minute)"},
	} {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bull_" + n.name, Help: n.help}, []string{"queue", "db"})
		e.reg.MustRegister(g)
		p.bull.gauges[n.name] = g
	}
	p.bull.depth = map[string]float64{}
}

// ---- the simulation ----

// dailyShape is the day's traffic curve: quiet at night, a peak in the
// afternoon (UTC+1, the bana users' day), between 0.25 and 1.
func dailyShape(t time.Time) float64 {
	h := float64(t.UTC().Hour()) + float64(t.UTC().Minute())/60 + 1
	return 0.625 - 0.375*math.Cos(2*math.Pi*(h-3)/24)
}

// tick advances the platform by dt and returns the requests that went
// through Traefik in it (for the log and trace emitters).
func (p *platform) tick(now time.Time, dt time.Duration) []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	sec := dt.Seconds()
	inc := p.opts.incidents(now)
	shape := dailyShape(now)
	rng := p.rng
	jitter := func(x float64) float64 { return x * (0.9 + 0.2*rng.Float64()) }

	// Traefik and the backends.
	n := p.opts.Rate*shape*sec + p.carry
	count := int(n)
	p.carry = n - float64(count)
	var reqs []request
	for range count {
		r := pickRoute(rng)
		code := 200
		if r.method == "POST" {
			code = 201
		}
		errP := 0.002
		if inc.ErrorBurst && r.service == "backend" {
			errP = 0.3
		}
		if inc.CrashLoop && r.service == "identity" {
			errP = 0.5
		}
		switch x := rng.Float64(); {
		case x < errP:
			code = []int{500, 502, 503}[rng.IntN(3)]
		case x < errP+0.03:
			code = []int{400, 401, 404}[rng.IntN(3)]
		}
		d := time.Duration(r.medianMS*math.Exp(0.5*rng.NormFloat64())*float64(time.Millisecond)) + 500*time.Microsecond
		if code >= 500 && code != 500 {
			d += time.Duration(rng.IntN(2000)) * time.Millisecond
		}
		start := now.Add(-time.Duration(rng.Float64() * float64(dt)))
		reqs = append(reqs, request{route: r, code: code, start: start.Add(-d), duration: d})
		cs := fmt.Sprint(code)
		p.traefik.requests.WithLabelValues(cs, r.method, "http", r.traefik).Inc()
		p.traefik.duration.WithLabelValues(cs, r.method, "http", r.traefik).Observe(d.Seconds() + 0.001)
		p.traefik.epReq.WithLabelValues(cs, "websecure", r.method, "http").Inc()
		p.traefik.epDur.WithLabelValues(cs, "websecure", r.method, "http").Observe(d.Seconds() + 0.001)
		if m := p.apps[r.service]; m != nil && !(inc.CrashLoop && r.service == "identity" && code >= 500) {
			m.http.WithLabelValues(r.method, r.path, cs).Observe(d.Seconds())
		}
	}
	p.traefik.open.WithLabelValues("websecure", "http").Set(math.Round(jitter(4 + 6*p.opts.Rate*shape)))
	p.traefik.open.WithLabelValues("web", "http").Set(math.Round(jitter(2)))
	for name, m := range p.apps {
		m.lag.Set(jitter(0.004))
		m.rss.Set(jitter(m.memBase))
		m.cpu.Add(sec * jitter(0.05))
		if name == "bullmq-worker" {
			m.http.WithLabelValues("GET", "/health", "200").Observe(0.002)
		}
	}
	p.byJob["nx-backend"][0].down.Store(inc.CrashLoop) // identity is the first backend target

	// PostgreSQL.
	rps := p.opts.Rate * shape
	conns := 18 + 10*shape
	states := map[string]float64{"active": math.Round(conns * 0.3), "idle": math.Round(conns * 0.6), "idle in transaction": math.Round(conns * 0.1)}
	for _, db := range databases {
		frac := 0.75
		if db == "identity" {
			frac = 0.25
		}
		total := 0.0
		for st, v := range states {
			x := math.Round(v * frac)
			if inc.PGConnections && db == "bana" && st == "idle in transaction" {
				// A connection leak: transactions opened and never closed.
				x = 84 + float64(rng.IntN(4))
			}
			p.pg.activity.WithLabelValues(db, st, "bana", "nestjs").Set(x)
			total += x
		}
		p.pg.maxTx.WithLabelValues(db, "active", "bana", "nestjs").Set(jitter(0.05 + 0.2*rng.Float64()))
		id := "16384"
		if db == "identity" {
			id = "16385"
		}
		p.pg.numBackends.WithLabelValues(id, db).Set(total)
		q := rps * frac * 6 * sec
		p.pg.hit.WithLabelValues(id, db).Add(jitter(q * 120))
		p.pg.read.WithLabelValues(id, db).Add(jitter(q * 1.2))
		p.pg.commit.WithLabelValues(id, db).Add(jitter(q))
		p.pg.rollback.WithLabelValues(id, db).Add(jitter(q * 0.004))
		p.pg.fetched.WithLabelValues(id, db).Add(jitter(q * 40))
		p.pg.inserted.WithLabelValues(id, db).Add(jitter(q * 0.8))
		p.pg.updated.WithLabelValues(id, db).Add(jitter(q * 0.5))
		if rng.Float64() < 0.002*sec {
			p.pg.deadlocks.WithLabelValues(id, db).Inc()
		}
		for _, qid := range []string{"-7045120961231233110", "3320961848377436187", "8934521763209983715"} {
			calls := jitter(q / 3)
			p.pg.stmtCalls.WithLabelValues("bana", db, qid).Add(calls)
			p.pg.stmtSeconds.WithLabelValues("bana", db, qid).Add(calls * jitter(0.004))
		}
		p.pg.sizes[db] += q * 300
		p.pg.size.WithLabelValues(db).Set(p.pg.sizes[db])
	}

	// Redis.
	used := 210e6 + 60e6*shape
	if inc.RedisMemory {
		used = 0.95 * (512 << 20)
	}
	p.redis.used.Set(used * (0.99 + 0.02*rng.Float64()))
	p.redis.clients.Set(math.Round(jitter(24 + 10*shape)))
	p.redis.blocked.Set(float64(len(queues)))
	ops := rps * 8 * sec
	p.redis.processed.Add(ops)
	p.redis.hits.Add(ops * 0.55)
	p.redis.misses.Add(ops * 0.06)
	p.redis.expired.Add(ops * 0.01)
	if inc.RedisMemory {
		p.redis.evicted.Add(ops * 0.02)
	}
	for i, cmd := range redisCmds {
		p.redis.cmds.WithLabelValues(cmd).Add(ops / float64(i+2))
	}
	p.redis.keys.WithLabelValues("db0").Set(math.Round(48000 + 2000*shape))
	p.redis.keys.WithLabelValues("db1").Set(math.Round(900 + 100*shape))

	// Kafka.
	for i, b := range p.kafka {
		ur := 0.0
		if inc.KafkaUnderReplicated && i == 1 {
			ur = 4
		}
		b.underRep.Set(ur)
		for j, t := range kafkaTopics {
			m := rps * sec * (1.5 / float64(j+1)) / 3
			b.msgIn.WithLabelValues(t).Add(m)
			b.bytesIn.WithLabelValues(t).Add(m * 850)
			b.bytesOut.WithLabelValues(t).Add(m * 850 * 2)
		}
	}
	for _, grp := range []struct{ group, topic string }{{"order-projector", "orders"}, {"payment-sync", "payments"}, {"notifier", "notifications"}} {
		for part := range 3 {
			key := grp.group + "/" + fmt.Sprint(part)
			p.lag.offsets[key] += rps * sec / 3
			lag := math.Round(jitter(20 + 30*shape))
			if inc.KafkaUnderReplicated && grp.topic == "orders" {
				lag = math.Round(jitter(4000))
			}
			p.lag.lag.WithLabelValues(grp.group, grp.topic, fmt.Sprint(part)).Set(lag)
			p.lag.offset.WithLabelValues(grp.group, grp.topic, fmt.Sprint(part)).Set(math.Round(p.lag.offsets[key]))
		}
	}

	// Nodes.
	for i, nd := range p.nodes {
		busy := 0.15 + 0.35*shape + 0.05*float64(i)
		for c := range nd.cores {
			cpu := fmt.Sprint(c)
			nd.cpu.WithLabelValues(cpu, "user").Add(sec * jitter(busy*0.65))
			nd.cpu.WithLabelValues(cpu, "system").Add(sec * jitter(busy*0.25))
			nd.cpu.WithLabelValues(cpu, "iowait").Add(sec * jitter(busy*0.05))
			nd.cpu.WithLabelValues(cpu, "softirq").Add(sec * jitter(busy*0.05))
			nd.cpu.WithLabelValues(cpu, "idle").Add(sec * (1 - busy))
		}
		nd.memAvail.Set((16 << 30) * (1 - jitter(nd.memUsedFrac+0.1*shape)))
		nd.fsAvail.WithLabelValues("/dev/sda1", "ext4", "/").Set(100e9 * (0.62 - 0.01*float64(i)))
		nd.fsAvail.WithLabelValues("/dev/sdb", "ext4", "/var/lib/kubelet").Set(200e9 * 0.48)
		nd.diskRead.WithLabelValues("sda").Add(sec * jitter(2e6*shape))
		nd.diskWritten.WithLabelValues("sda").Add(sec * jitter(5e6*shape))
		nd.netRx.WithLabelValues("eth0").Add(sec * jitter(3e6*shape))
		nd.netTx.WithLabelValues("eth0").Add(sec * jitter(2.5e6*shape))
		nd.netRx.WithLabelValues("lo").Add(sec * 1e5)
		nd.load1.Set(jitter(busy * float64(nd.cores)))
		nd.load5.Set(busy * float64(nd.cores))
	}

	// Kubelet volumes, cAdvisor, kube-state-metrics.
	pvcUsed := 0.55 * 20e9
	if inc.DiskFull {
		pvcUsed = 0.91 * 20e9
	}
	p.kubelet.used.WithLabelValues(nsPersistent, "data-postgresql-0").Set(pvcUsed * (0.99 + 0.02*rng.Float64()))
	for _, pd := range pods {
		cpu := pd.cpuBase * (0.5 + shape)
		mem := pd.memBase * (0.9 + 0.1*shape)
		if pd.name == identityPod && inc.CrashLoop {
			cpu, mem = pd.cpuBase*0.2, pd.memBase*0.3
			if rng.Float64() < sec/math.Max(1, p.opts.crashEvery().Seconds()) {
				p.ksm.restarts.WithLabelValues(pd.ns, pd.name, fmt.Sprintf("5f0c%04x-8d1e-4b5a-9c2f-%012x", 1, 7919), pd.container).Inc()
			}
		}
		p.kubelet.cpu.WithLabelValues(pd.ns, pd.name, pd.container, "total").Add(sec * jitter(cpu))
		p.kubelet.mem.WithLabelValues(pd.ns, pd.name, pd.container).Set(jitter(mem))
	}

	// BullMQ.
	for i, q := range queues {
		in := rps * sec * 0.4 / float64(i+1)
		depth := p.bull.depth[q]*0.7 + jitter(in*2)
		if inc.RedisMemory && q == "email" {
			depth = p.bull.depth[q] + in*5
		}
		p.bull.depth[q] = depth
		g := p.bull.gauges
		g["wait_total"].WithLabelValues(q, "default").Set(math.Round(depth))
		g["active_total"].WithLabelValues(q, "default").Set(math.Round(jitter(2 + 3*shape)))
		g["prioritized_total"].WithLabelValues(q, "default").Set(math.Round(depth * 0.1))
		g["waiting_children_total"].WithLabelValues(q, "default").Set(0)
		delayed := math.Round(jitter(3))
		failed := 12.0 + float64(i)
		if inc.ErrorBurst && q == "payments-sync" {
			delayed, failed = math.Round(jitter(40)), failed+30
		}
		g["delayed_total"].WithLabelValues(q, "default").Set(delayed)
		g["failed_total"].WithLabelValues(q, "default").Set(failed)
		g["completed_total"].WithLabelValues(q, "default").Set(math.Round(jitter(rps * 60 * 0.4 / float64(i+1))))
	}
	return reqs
}

func pickRoute(rng *rand.Rand) route {
	x := rng.Float64()
	for _, r := range routes {
		if x < r.weight {
			return r
		}
		x -= r.weight
	}
	return routes[0]
}
