import { isIPv4, isIPv6 } from 'node:net'

/**
 * The key a client address is counted under in every per-address limit. An IPv4 address is
 * itself; an IPv6 address is its /64, because one subscriber (one home, one VM) routinely holds a
 * whole /64 and could otherwise take a fresh counter for every request; an IPv4-mapped IPv6
 * address (`::ffff:192.0.2.1`, what a dual-stack socket reports) is the IPv4 address it carries,
 * so the same client is one counter whichever way it connected.
 */
export function addressKey (ip: string): string {
  if (isIPv4(ip)) return ip
  // A zone index (fe80::1%eth0) names the interface, not the host.
  const address = ip.split('%')[0] ?? ''
  if (!isIPv6(address)) return ip
  const groups = ipv6Groups(address)
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const high = groups[6] ?? 0
    const low = groups[7] ?? 0
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`
  }
  return `${groups.slice(0, 4).map((group) => group.toString(16)).join(':')}::/64`
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a trailing dotted quad converted). */
function ipv6Groups (address: string): number[] {
  const [head = '', tail] = address.split('::')
  const parse = (part: string): number[] => part === ''
    ? []
    : part.split(':').flatMap((group) => {
      if (!group.includes('.')) return [Number.parseInt(group, 16)]
      const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number)
      return [(a << 8) | b, (c << 8) | d]
    })
  const first = parse(head)
  const last = tail === undefined ? [] : parse(tail)
  return [...first, ...Array<number>(8 - first.length - last.length).fill(0), ...last]
}

/**
 * TRUST_PROXY (src/config.ts) as Fastify's `trustProxy`. A hop count becomes a function: Fastify
 * 5 takes a number but trusts nothing with it, since a hop count cannot tell a proxy from a client
 * that connects directly and writes X-Forwarded-For itself — so a count is only for a Tessera that
 * is reachable through its proxies alone (the README says so).
 */
export function trustProxyOption (setting: boolean | number | string[]): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof setting !== 'number') return setting
  if (setting === 0) return false
  return function withinTrustedHops (_address, hop) { return hop < setting }
}
