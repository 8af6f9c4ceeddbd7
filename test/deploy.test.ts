import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseAllDocuments, parse } from 'yaml'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { Job } from 'kubernetes-models/batch/v1/Job'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'
import { EnvSchema } from '../schemas/env.js'

/*
 * deploy/: no container engine runs here, so the files are checked, not run. The Kubernetes
 * manifests against the API's own schemas (kubernetes-models validates each object with the
 * OpenAPI schema of its kind); the compose file for what it must hold. Every setting they name
 * must be one Tessera reads.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const read = (path: string): string => readFileSync(`${ROOT}${path}`, 'utf8')
const KINDS = { ConfigMap, Secret, Service, Deployment, Job, PodDisruptionBudget, HorizontalPodAutoscaler } as const
const SETTINGS = new Set(Object.keys(EnvSchema.properties))

function manifests (path: string): Array<{ kind: string, metadata: { name: string }, [key: string]: unknown }> {
  return parseAllDocuments(read(path)).map((document) => document.toJS())
}

t.test('every Kubernetes object is valid for its kind', async (t) => {
  const objects = [...manifests('deploy/kubernetes/tessera.yaml'), ...manifests('deploy/kubernetes/secret.example.yaml')]
  t.same(objects.map((object) => object.kind).sort(), ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Job', 'PodDisruptionBudget', 'Secret', 'Service'])
  for (const object of objects) {
    const Kind = KINDS[object.kind as keyof typeof KINDS]
    t.doesNotThrow(() => { new Kind(object as never).validate() }, `${object.kind} ${object.metadata.name}`)
  }
  // The check can fail: a misspelt field is refused.
  t.throws(() => { new Deployment({ metadata: { name: 'x' }, spec: { replicas: 'three' } } as never).validate() })
})

t.test('the Deployment probes /livez and /readyz, drains within its grace period, and waits for the migration Job', async (t) => {
  const objects = manifests('deploy/kubernetes/tessera.yaml')
  const deployment = objects.find((object) => object.kind === 'Deployment') as unknown as Deployment
  const pod = deployment.spec?.template.spec
  const container = pod?.containers[0]
  t.equal(container?.livenessProbe?.httpGet?.path, '/livez')
  t.equal(container?.readinessProbe?.httpGet?.path, '/readyz')
  t.ok(container?.lifecycle?.preStop, 'a preStop pause while endpoints are removed')
  const config = (objects.find((object) => object.kind === 'ConfigMap') as unknown as ConfigMap).data ?? {}
  t.equal(config.MIGRATE_ON_START, 'false')
  t.ok(Number(config.SHUTDOWN_TIMEOUT) + 5 < (pod?.terminationGracePeriodSeconds ?? 30), 'preStop + SHUTDOWN_TIMEOUT fit the grace period')
  const job = objects.find((object) => object.kind === 'Job') as unknown as Job
  t.same(job.spec?.template.spec?.containers[0]?.command, ['node', 'dist/src/cli/index.js', 'migrate'])
  const secret = manifests('deploy/kubernetes/secret.example.yaml')[0] as unknown as Secret
  for (const name of [...Object.keys(config), ...Object.keys(secret.stringData ?? {})]) t.ok(SETTINGS.has(name), `${name} is a setting`)
  for (const value of Object.values(secret.stringData ?? {})) t.match(value, /CHANGE-ME|redis:\/\/redis/, 'placeholders only, no secret committed')
})

t.test('the compose file: three replicas on PostgreSQL and Redis, migrations first, nginx in front', async (t) => {
  const compose = parse(read('deploy/compose.yaml')) as { services: Record<string, { deploy?: { replicas?: number }, environment?: Record<string, string>, depends_on?: Record<string, { condition: string }>, healthcheck?: unknown, stop_grace_period?: string }> }
  const { tessera, migrate, nginx } = compose.services
  t.equal(tessera?.deploy?.replicas, 3)
  t.same(Object.keys(compose.services).sort(), ['app', 'migrate', 'nginx', 'postgres', 'redis', 'tessera'])
  t.equal(tessera?.depends_on?.migrate?.condition, 'service_completed_successfully')
  t.equal(nginx?.depends_on?.tessera?.condition, 'service_healthy')
  t.ok(tessera?.healthcheck)
  t.equal(tessera?.stop_grace_period, '30s')
  for (const name of Object.keys(migrate?.environment ?? {})) t.ok(SETTINGS.has(name), `${name} is a setting`)
  t.equal(migrate?.environment?.MIGRATE_ON_START, 'false')
  t.match(read('deploy/nginx.conf'), /server tessera:3000 resolve[ ;]/)
})
