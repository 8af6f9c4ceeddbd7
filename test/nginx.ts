import { accessSync, constants } from 'node:fs'
import { chmod, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

/**
 * A real nginx for the tests and the cluster test: its own prefix in a fresh directory
 * (configuration, pid, logs and temp files all inside), the site under test in its http block.
 */

/** A program from Debian's packages: on the PATH, or in the sbin folders not every PATH lists. */
export function findProgram (name: string): string {
  const candidates = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/local/nginx/sbin']
  for (const directory of candidates) {
    const file = join(directory, name)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {}
  }
  // Fail, never skip: CI installs nginx (.ci/run), so a missing binary is a broken machine.
  throw new Error(`${name} is not installed (Debian: apt-get install ${name}; .ci/run installs nginx)`)
}

export interface NginxSetup {
  /** The directory holding everything nginx writes; remove it when done. */
  prefix: string
  binary: string
  /** The command line that runs nginx in the foreground on this prefix. */
  args: string[]
}

/** Writes nginx.conf around `site` (server and upstream blocks) in a fresh prefix. */
export async function prepareNginx (site: string, workerConnections = 64): Promise<NginxSetup> {
  const prefix = await mkdtemp(join(tmpdir(), 'tessera-nginx-'))
  // Worker processes run as an unprivileged user when nginx is started by root.
  await chmod(prefix, 0o755)
  await writeFile(join(prefix, 'nginx.conf'), `worker_processes 1;
error_log ${prefix}/error.log warn;
events { worker_connections ${workerConnections}; }
http {
    access_log off;
    client_body_temp_path ${prefix}/client_body;
    proxy_temp_path ${prefix}/proxy;
    fastcgi_temp_path ${prefix}/fastcgi;
    uwsgi_temp_path ${prefix}/uwsgi;
    scgi_temp_path ${prefix}/scgi;

${site}
}
`)
  return {
    prefix,
    binary: findProgram('nginx'),
    args: ['-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log'), '-g', `daemon off; pid ${join(prefix, 'nginx.pid')};`]
  }
}
