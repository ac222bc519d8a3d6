// Prometheus HTTP API v1 (/api/v1), typed as Prometheus documents it.
import { request } from './http';

interface Envelope<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
  warnings?: string[];
}

export type Metric = Record<string, string>;
export type SamplePair = [number, string];

export interface MatrixResult {
  resultType: 'matrix';
  result: { metric: Metric; values?: SamplePair[] }[];
}
export interface VectorResult {
  resultType: 'vector';
  result: { metric: Metric; value: SamplePair }[];
}
export interface ScalarResult {
  resultType: 'scalar' | 'string';
  result: SamplePair;
}
export type QueryData = MatrixResult | VectorResult | ScalarResult;

export interface Exemplar {
  labels: Metric;
  value: string;
  timestamp: number;
}
export interface ExemplarSeries {
  seriesLabels: Metric;
  exemplars: Exemplar[];
}

async function get<T>(path: string, params: Record<string, string | number | undefined>, signal?: AbortSignal): Promise<T> {
  const env = await request<Envelope<T>>(path, { form: params, signal });
  return env.data;
}

export function queryRange(query: string, start: number, end: number, step: number, signal?: AbortSignal) {
  return get<MatrixResult>('api/v1/query_range', { query, start: start / 1000, end: end / 1000, step }, signal);
}

export function queryInstant(query: string, time: number, signal?: AbortSignal) {
  return get<QueryData>('api/v1/query', { query, time: time / 1000 }, signal);
}

export function queryExemplars(query: string, start: number, end: number, signal?: AbortSignal) {
  return get<ExemplarSeries[] | null>('api/v1/query_exemplars', { query, start: start / 1000, end: end / 1000 }, signal);
}

export function labelValues(name: string, match?: string) {
  return request<Envelope<string[]>>(`api/v1/label/${encodeURIComponent(name)}/values`, { params: { 'match[]': match } }).then((e) => e.data ?? []);
}

export interface Target {
  discoveredLabels: Metric;
  labels: Metric;
  scrapePool: string;
  scrapeUrl: string;
  globalUrl: string;
  lastError: string;
  lastScrape: string;
  lastScrapeDuration: number;
  health: 'up' | 'down' | 'unknown';
  scrapeInterval?: string;
  scrapeTimeout?: string;
}
export interface TargetsData {
  activeTargets: Target[];
  droppedTargets: { discoveredLabels: Metric; scrapePool?: string }[];
  droppedTargetCounts?: Record<string, number>;
}
export const targets = () => request<Envelope<TargetsData>>('api/v1/targets').then((e) => e.data);

export interface Rule {
  name: string;
  query: string;
  type: 'alerting' | 'recording';
  health: string;
  lastError?: string;
  lastEvaluation: string;
  evaluationTime: number;
  state?: 'firing' | 'pending' | 'inactive';
  duration?: number;
  labels?: Metric;
  annotations?: Metric;
  alerts?: { labels: Metric; annotations: Metric; state: string; activeAt?: string; value: string }[];
}
export interface RuleGroup {
  name: string;
  file: string;
  interval: number;
  rules: Rule[];
  lastEvaluation?: string;
}
export const rules = () => request<Envelope<{ groups: RuleGroup[] }>>('api/v1/rules').then((e) => e.data.groups ?? []);

export const buildInfo = () => request<Envelope<Record<string, string>>>('api/v1/status/buildinfo').then((e) => e.data);
export const runtimeInfo = () => request<Envelope<Record<string, unknown>>>('api/v1/status/runtimeinfo').then((e) => e.data);
export const flags = () => request<Envelope<Record<string, string>>>('api/v1/status/flags').then((e) => e.data);
export const config = () => request<Envelope<{ yaml: string }>>('api/v1/status/config').then((e) => e.data.yaml);

export interface TSDBStatus {
  headStats: { numSeries: number; numLabelPairs?: number; chunkCount: number; minTime: number; maxTime: number };
  seriesCountByMetricName: { name: string; value: number }[];
  labelValueCountByLabelName: { name: string; value: number }[];
  memoryInBytesByLabelName: { name: string; value: number }[];
  seriesCountByLabelValuePair: { name: string; value: number }[];
}
export const tsdbStatus = () => request<Envelope<TSDBStatus>>('api/v1/status/tsdb').then((e) => e.data);
