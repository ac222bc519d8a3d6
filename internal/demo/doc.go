// Package demo is `nxwatcher demo`: serve in-process (internal/app) plus a
// simulated bana platform that speaks the real protocols, so every panel
// of the eight dashboards in deploy/dashboards shows data and the design
// doc's seven alert rules fire.
//
// The platform:
//
//   - exporter-style /metrics endpoints (client_golang registries, each on
//     its own 127.0.0.1 listener) for Traefik v3, the backend services
//     (prom-client names), postgres_exporter, redis_exporter, the Kafka JMX
//     exporter and kafka_exporter, node_exporter, the kubelet and cAdvisor,
//     kube-state-metrics and bullmq-prometheus, scraped by scrape jobs the
//     demo adds to serve's config (the design doc's job names);
//   - logs pushed through the Loki push API (JSON body): Traefik's JSON
//     access log, identity and the BullMQ worker in logfmt, the backend in
//     JSON, each request line carrying its trace ID;
//   - traces through the OpenTelemetry Go SDK over OTLP/HTTP, one SDK per
//     service: traefik → identity/backend → postgresql/redis/kafka, and
//     backend → bullmq-worker through a BullMQ job, so the
//     metrics-generator's service graph forms;
//   - a daily traffic curve and an incident cycle (a 5xx burst, the identity
//     pod crash-looping, Redis near maxmemory, an under-replicated
//     partition, a PostgreSQL connection leak, a filling PVC) that makes
//     each of deploy/rules/bana.rules.yml's alerts fire once per cycle.
//
// Use: d, err := demo.New(opts); d.Run(ctx, ready); d.Close().
package demo
