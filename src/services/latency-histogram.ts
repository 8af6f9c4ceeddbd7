/**
 * Request latency per route and status, as a Prometheus histogram, at the cost of a bucket search
 * and three additions per request. prom-client's own Histogram hashes its label set on every
 * observation, even through a cached label child: 3–5 % of a cached introspection's CPU. Here
 * each route holds its series per status code, found by a small integer key, and the text
 * format is produced only when /metrics is scraped (`values()` has the shape prom-client's
 * registry renders, so the series sit in the same registry as every other metric).
 */
export class LatencyHistogram {
  readonly #buckets: number[]
  readonly #series = new Map<string, Series>()

  constructor (buckets: number[]) {
    this.#buckets = [...buckets].sort((a, b) => a - b)
  }

  /** The recorder of one route: keep it (one per route), call it with each answer. */
  route (method: string, route: string): (statusCode: number, seconds: number) => void {
    const byStatus = new Map<number, Series>()
    return (statusCode, seconds) => {
      let series = byStatus.get(statusCode)
      if (series === undefined) {
        const key = `${method} ${route} ${statusCode}`
        series = this.#series.get(key)
        if (series === undefined) {
          series = { labels: { method, route, status_code: String(statusCode) }, counts: new Float64Array(this.#buckets.length), sum: 0, count: 0 }
          this.#series.set(key, series)
        }
        byStatus.set(statusCode, series)
      }
      const buckets = this.#buckets
      let index = 0
      while (index < buckets.length && seconds > (buckets[index] ?? 0)) index++
      if (index < buckets.length) series.counts[index] = (series.counts[index] ?? 0) + 1
      series.sum += seconds
      series.count++
    }
  }

  /** Every series as cumulative `_bucket` samples (with `+Inf`), `_sum` and `_count`, labelled. */
  values (name: string): HistogramSample[] {
    const samples: HistogramSample[] = []
    for (const series of this.#series.values()) {
      let cumulative = 0
      for (const [index, bound] of this.#buckets.entries()) {
        cumulative += series.counts[index] ?? 0
        samples.push({ metricName: `${name}_bucket`, labels: { le: bound, ...series.labels }, value: cumulative })
      }
      samples.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', ...series.labels }, value: series.count })
      samples.push({ metricName: `${name}_sum`, labels: series.labels, value: series.sum })
      samples.push({ metricName: `${name}_count`, labels: series.labels, value: series.count })
    }
    return samples
  }
}

interface Series {
  labels: { method: string, route: string, status_code: string }
  /** Answers per bucket, not cumulative (an answer slower than the last bound is only counted). */
  counts: Float64Array
  sum: number
  count: number
}

export interface HistogramSample {
  metricName: string
  labels: Record<string, string | number>
  value: number
}
