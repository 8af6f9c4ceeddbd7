import t from 'tap'
import { LatencyHistogram } from '../../src/services/latency-histogram.js'

t.test('observations land in the first bucket whose bound they do not exceed; buckets are cumulative with +Inf', async (t) => {
  const histogram = new LatencyHistogram([0.01, 0.001, 0.1])
  const record = histogram.route('POST', '/oauth/introspect')
  for (const seconds of [0.0005, 0.001, 0.002, 0.05, 3]) record(200, seconds)
  const labels = { method: 'POST', route: '/oauth/introspect', status_code: '200' }
  t.strictSame(histogram.values('latency'), [
    { metricName: 'latency_bucket', labels: { le: 0.001, ...labels }, value: 2 },
    { metricName: 'latency_bucket', labels: { le: 0.01, ...labels }, value: 3 },
    { metricName: 'latency_bucket', labels: { le: 0.1, ...labels }, value: 4 },
    { metricName: 'latency_bucket', labels: { le: '+Inf', ...labels }, value: 5 },
    { metricName: 'latency_sum', labels, value: 0.0005 + 0.001 + 0.002 + 0.05 + 3 },
    { metricName: 'latency_count', labels, value: 5 }
  ])
})

t.test('each status code of a route is its own series; two recorders of one route share them', async (t) => {
  const histogram = new LatencyHistogram([1])
  const first = histogram.route('GET', '/auth/verify')
  const second = histogram.route('GET', '/auth/verify')
  first(200, 0.5)
  second(200, 0.5)
  first(401, 2)
  const counts = histogram.values('x').filter((sample) => sample.metricName === 'x_count').map((sample) => [sample.labels.status_code, sample.value])
  t.strictSame(counts, [['200', 2], ['401', 1]])
})

t.test('nothing observed, nothing reported', async (t) => {
  const histogram = new LatencyHistogram([1])
  histogram.route('GET', '/healthz')
  t.strictSame(histogram.values('x'), [])
})
