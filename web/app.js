/* global document, navigator, fetch, location */
// Tessera's self-service page: a plain client of the API (/api/v1/session, /api/v1/token-policy,
// /api/v1/tokens…). Hand-written, no framework, no build step. The DOM is built node by node
// (the Content-Security-Policy enforces Trusted Types: no HTML parsing). A new token's plaintext
// lives only in one input field until it is hidden; it is never stored or put in a URL.

const PAGE_SIZE = 20
const FIRST_PAGE = `/api/v1/tokens?limit=${PAGE_SIZE}`

const $ = (id) => {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`missing #${id}`)
  return element
}

const state = {
  policy: null,
  session: null,
  csrf: null,
  /** Whether a freshly created or regenerated token is on screen (Regenerate is paused meanwhile). */
  freshShown: false,
  page: { url: FIRST_PAGE, tokens: [], links: {} },
  /** How many pages we are below the newest one. */
  depth: 0
}

class ApiError extends Error {
  constructor (status, body) {
    super(body?.detail ?? body?.error_description ?? `the server answered ${status}`)
    this.status = status
    this.code = body?.code ?? null
  }
}

/** Calls the API with the session cookie; state-changing calls carry the CSRF token. */
async function api (method, path, body) {
  const headers = { accept: 'application/json' }
  if (method !== 'GET' && state.csrf !== null) headers['x-csrf-token'] = state.csrf
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' }
  if (body !== undefined) {
    headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let response
  try {
    response = await fetch(path, init)
  } catch {
    throw new ApiError(0, { detail: 'The server could not be reached. Check your connection and try again.' })
  }
  let data = null
  if (response.status !== 204) {
    try { data = await response.json() } catch { data = null }
  }
  if (!response.ok) throw new ApiError(response.status, data)
  return { data, headers: response.headers }
}

/** RFC 8288 Link header → { rel: path?query } on this origin. */
function parseLinks (header) {
  const links = {}
  if (header === null) return links
  for (const part of header.split(',')) {
    const match = /<([^>]+)>\s*;\s*rel="([^"]+)"/.exec(part)
    if (match === null) continue
    const url = new URL(match[1], location.href)
    links[match[2]] = `${url.pathname}${url.search}`
  }
  return links
}

// ---- small DOM helpers ------------------------------------------------------------------------

function element (tag, properties = {}, children = []) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(properties)) {
    if (key === 'text') node.textContent = value
    else if (key === 'class') node.className = value
    else node.setAttribute(key, value)
  }
  for (const child of children) node.append(child)
  return node
}

function announce (message) {
  // Cleared first so the same message twice is announced twice.
  $('status').textContent = ''
  setTimeout(() => { $('status').textContent = message }, 50)
}

function showAlert (message) {
  const alert = $('alert')
  alert.textContent = message
  alert.hidden = false
  alert.focus()
}

function clearAlert () {
  $('alert').hidden = true
  $('alert').textContent = ''
}

async function busy (button, work) {
  button.disabled = true
  button.setAttribute('aria-busy', 'true')
  try {
    return await work()
  } finally {
    button.removeAttribute('aria-busy')
    button.disabled = false
    updateRotateButtons()
  }
}

/** Any 401 once signed in means the session ended: back to the sign-in form. */
function handleError (error) {
  if (error instanceof ApiError && error.status === 401 && state.session !== null) {
    showSignedOut()
    showAlert(`You are signed out: ${error.message}`)
    return
  }
  if (error instanceof ApiError && error.code === 'TESSERA_INTERNAL_APP_MISSING' && state.policy !== null) {
    state.policy.internal_application = false
    renderCreateForm()
  }
  showAlert(error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`)
}

// ---- time -------------------------------------------------------------------------------------

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'always' })
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

function relativeTime (date, now = Date.now()) {
  const seconds = Math.round((date.getTime() - now) / 1000)
  const size = Math.abs(seconds)
  if (size < 10) return 'just now'
  if (size < 60) return relative.format(seconds, 'second')
  if (size < 3600) return relative.format(Math.round(seconds / 60), 'minute')
  if (size < 86400) return relative.format(Math.round(seconds / 3600), 'hour')
  if (size < 86400 * 60) return relative.format(Math.round(seconds / 86400), 'day')
  if (size < 86400 * 365 * 2) return relative.format(Math.round(seconds / (86400 * 30)), 'month')
  return relative.format(Math.round(seconds / (86400 * 365)), 'year')
}

function duration (seconds) {
  if (seconds % 86400 === 0) return plural(seconds / 86400, 'day')
  if (seconds % 3600 === 0) return plural(seconds / 3600, 'hour')
  if (seconds % 60 === 0) return plural(seconds / 60, 'minute')
  return plural(seconds, 'second')
}

function plural (count, unit) {
  return `${count} ${unit}${count === 1 ? '' : 's'}`
}

function timeElement (iso, text) {
  return element('time', { datetime: iso, text })
}

// ---- signed out / signed in -------------------------------------------------------------------

function showSignedOut () {
  state.session = null
  state.csrf = null
  hideFresh()
  $('loading').hidden = true
  $('signed-in').hidden = true
  $('account').hidden = true
  $('sign-in').hidden = false
  $('token-list').replaceChildren()
  const disabled = state.policy !== null && !state.policy.password_sign_in
  $('sign-in-disabled').hidden = !disabled
  for (const control of $('sign-in-form').elements) control.disabled = disabled
}

async function showSignedIn (session) {
  state.session = session
  state.csrf = session.csrf_token
  // Read afresh: an operator may have restored the first-party application since the page loaded.
  ;({ data: state.policy } = await api('GET', '/api/v1/token-policy'))
  clearAlert()
  $('loading').hidden = true
  $('sign-in').hidden = true
  $('account').hidden = false
  $('account-name').textContent = session.username
  $('signed-in').hidden = false
  renderCreateForm()
  state.depth = 0
  await loadPage(FIRST_PAGE)
}

async function signIn (event) {
  event.preventDefault()
  clearAlert()
  const username = $('username')
  const password = $('password')
  username.setAttribute('aria-invalid', String(username.value.trim() === ''))
  password.setAttribute('aria-invalid', String(password.value === ''))
  if (username.value.trim() === '' || password.value === '') {
    showAlert('Enter your username and your password.')
    return
  }
  await busy($('sign-in-button'), async () => {
    try {
      const { data } = await api('POST', '/api/v1/session', { username: username.value.trim(), password: password.value })
      password.value = ''
      await showSignedIn(data)
      announce(`Signed in as ${data.username}.`)
      $('list-title').focus()
    } catch (error) {
      password.value = ''
      if (error instanceof ApiError && error.status === 401) {
        password.setAttribute('aria-invalid', 'true')
        showAlert('Sign-in failed: wrong username or password.')
      } else {
        handleError(error)
      }
      password.focus()
    }
  })
}

async function signOut () {
  try {
    await api('DELETE', '/api/v1/session')
  } catch (error) {
    // A session that has already ended is as good as signed out.
    if (!(error instanceof ApiError) || error.status !== 401) {
      handleError(error)
      return
    }
  }
  showSignedOut()
  announce('You have signed out.')
  $('username').focus()
}

// ---- the list ---------------------------------------------------------------------------------

async function loadPage (url, direction = null) {
  const { data: tokens, headers } = await api('GET', url)
  if (tokens.length === 0 && direction !== null) {
    $(direction).disabled = true
    announce(direction === 'older' ? 'There are no older tokens.' : 'There are no newer tokens.')
    return
  }
  if (direction === 'older') state.depth++
  if (direction === 'newer') state.depth = Math.max(0, state.depth - 1)
  state.page = { url, tokens, links: parseLinks(headers.get('link')) }
  renderList()
}

async function reloadFirstPage () {
  state.depth = 0
  await loadPage(FIRST_PAGE)
}

function renderList () {
  const { tokens } = state.page
  const precision = state.policy?.last_used_precision ?? 60
  // "every minute", "every 5 minutes"
  const every = duration(precision).replace(/^1 /, '')
  $('last-used-precision').textContent = `“Last used” is approximate: uses are written every ${every}, so the latest may not show yet.`
  $('token-list').replaceChildren(...tokens.map(renderToken))
  $('token-list-empty').hidden = tokens.length > 0
  $('token-list-empty').textContent = state.depth === 0 ? 'You have no tokens yet. Create one below.' : 'No tokens on this page.'
  $('newer').disabled = state.depth === 0 || state.page.links.prev === undefined
  $('older').disabled = tokens.length < PAGE_SIZE || state.page.links.next === undefined
  $('pager').hidden = $('newer').disabled && $('older').disabled && !$('pager').contains(document.activeElement)
  updateRotateButtons()
}

function renderToken (token) {
  const item = $('token-template').content.firstElementChild.cloneNode(true)
  item.dataset.tokenId = token.id
  item.dataset.state = token.state
  const headingId = `token-${token.id}`
  item.querySelector('article').setAttribute('aria-labelledby', headingId)
  const name = item.querySelector('.token-name')
  name.id = headingId
  name.textContent = token.name
  const badge = item.querySelector('.badge')
  badge.textContent = token.state
  badge.classList.add(token.state)

  const field = (key) => item.querySelector(`[data-field="${key}"]`)
  field('scopes').textContent = token.scopes.join(', ')
  field('audience').textContent = token.audience === null ? 'Any service' : token.audience.join(', ')
  field('application').textContent = token.application.name === '' ? token.application.client_id : token.application.name
  const created = new Date(token.created_at)
  field('created').append(timeElement(token.created_at, `${absolute.format(created)} (${relativeTime(created)})`))
  field('expires').append(expiryText(token))
  field('last-used').append(lastUsedText(token))
  field('last-eight').textContent = `…${token.token_last_eight}`

  for (const label of item.querySelectorAll('[data-label]')) label.textContent = ` “${token.name}”`
  const rotate = item.querySelector('[data-action="rotate"]')
  const invalidate = item.querySelector('[data-action="invalidate"]')
  rotate.addEventListener('click', () => { rotateToken(token, rotate).catch(handleError) })
  invalidate.addEventListener('click', () => { invalidateToken(token, invalidate).catch(handleError) })
  invalidate.disabled = token.state === 'revoked'
  return item
}

/**
 * Within this many days of its end a live token's expiry stands out: a week, or the largest
 * notice the server sends (TOKEN_EXPIRY_NOTICE_DAYS) when that is shorter.
 */
function warningDays () {
  const notices = state.policy?.expiry_notice_days ?? []
  return notices.length === 0 ? 7 : Math.min(7, Math.max(...notices))
}

function expiryText (token) {
  if (token.expires_at === null) return document.createTextNode('Never')
  const expires = new Date(token.expires_at)
  const when = `${absolute.format(expires)}`
  if (expires.getTime() <= Date.now()) return timeElement(token.expires_at, `Expired ${relativeTime(expires)} (${when})`)
  const time = timeElement(token.expires_at, `Expires ${relativeTime(expires)} (${when})`)
  if (token.state !== 'active' || expires.getTime() - Date.now() > warningDays() * 86_400_000) return time
  const soon = element('strong', { class: 'expiring-soon' })
  soon.append('⚠ ', time)
  return soon
}

function lastUsedText (token) {
  if (token.last_used === null) return document.createTextNode('Never recorded')
  const precision = duration(state.policy?.last_used_precision ?? 60)
  const used = new Date(token.last_used)
  const from = token.last_used_ip ? `, from ${token.last_used_ip}` : ''
  return timeElement(token.last_used, `About ${relativeTime(used)} (± ${precision})${from}`)
}

/** Regenerate is a real button, disabled while a fresh token is on screen and for dead tokens. */
function updateRotateButtons () {
  for (const item of $('token-list').children) {
    const button = item.querySelector('[data-action="rotate"]')
    if (button !== null && button.getAttribute('aria-busy') !== 'true') button.disabled = state.freshShown || item.dataset.state !== 'active'
  }
  $('rotate-paused').hidden = !state.freshShown
}

// ---- confirmation -----------------------------------------------------------------------------

function confirmAction ({ title, text, confirm }) {
  const dialog = $('confirm')
  $('confirm-title').textContent = title
  $('confirm-text').textContent = text
  $('confirm-ok').textContent = confirm
  dialog.returnValue = ''
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true })
    dialog.showModal()
    $('confirm-cancel').focus()
  })
}

// ---- actions ----------------------------------------------------------------------------------

async function invalidateToken (token, button) {
  clearAlert()
  const confirmed = await confirmAction({
    title: `Invalidate “${token.name}”?`,
    text: 'Anything that uses this token stops working at once. This cannot be undone.',
    confirm: 'Invalidate'
  })
  if (!confirmed) return
  await busy(button, async () => {
    await api('POST', `/api/v1/tokens/${encodeURIComponent(token.id)}/invalidate`)
  })
  await loadPage(state.page.url)
  if (state.page.tokens.length === 0 && state.depth > 0) await reloadFirstPage()
  announce(`Token “${token.name}” was invalidated. Anything using it has stopped working.`)
  $('list-title').focus()
}

async function rotateToken (token, button) {
  if (state.freshShown) return
  clearAlert()
  const confirmed = await confirmAction({
    title: `Regenerate “${token.name}”?`,
    text: 'You get a new secret with the same name, scopes, audience and lifetime. The current one stops working at once: update whatever uses it.',
    confirm: 'Regenerate'
  })
  if (!confirmed) return
  const { data } = await busy(button, async () => await api('POST', `/api/v1/tokens/${encodeURIComponent(token.id)}/rotate`, {}))
  showFresh(data, `Token “${token.name}” was regenerated; its old secret no longer works.`)
  await reloadFirstPage()
}

async function createToken (event) {
  event.preventDefault()
  clearAlert()
  const name = $('token-name')
  const scopes = [...$('scope-list').querySelectorAll('input[type="checkbox"]:checked')].map((input) => input.value)
  const problems = []
  name.setAttribute('aria-invalid', String(name.value.trim() === ''))
  if (name.value.trim() === '') problems.push('give the token a name')
  if (scopes.length === 0) problems.push('choose at least one scope')
  if (problems.length > 0) {
    showAlert(`To create a token, ${problems.join(' and ')}.`)
    return
  }
  const body = { name: name.value.trim(), scopes }
  const audience = $('token-audience').value.split(/[\s,]+/).filter(Boolean)
  if (audience.length > 0) body.audience = audience
  const expiry = $('token-expiry').value
  if (expiry === 'never') body.expires_at = null
  else body.expires_in = Number(expiry)

  let created
  try {
    ({ data: created } = await busy($('create-button'), async () => await api('POST', '/api/v1/tokens', body)))
  } catch (error) {
    handleError(error)
    return
  }
  $('create-form').reset()
  renderCreateForm()
  showFresh(created, `Token “${created.name}” was created.`)
  await reloadFirstPage()
}

// ---- the token shown once ---------------------------------------------------------------------

function showFresh (created, message) {
  state.freshShown = true
  $('fresh-name').textContent = created.name
  $('fresh-value').value = created.token
  $('copy-result').textContent = ''
  $('fresh').hidden = false
  updateRotateButtons()
  announce(message)
  $('fresh').focus()
}

function hideFresh () {
  state.freshShown = false
  $('fresh-value').value = ''
  $('fresh-name').textContent = ''
  $('copy-result').textContent = ''
  $('fresh').hidden = true
  updateRotateButtons()
}

async function copyFresh () {
  const input = $('fresh-value')
  try {
    await navigator.clipboard.writeText(input.value)
    $('copy-result').textContent = 'Copied to the clipboard.'
  } catch {
    // No clipboard API (plain HTTP on a non-local host): select it for Ctrl+C / ⌘C.
    input.focus()
    input.select()
    $('copy-result').textContent = document.execCommand('copy') ? 'Copied to the clipboard.' : 'Selected: press Ctrl+C (⌘C on a Mac) to copy.'
  }
}

// ---- the create form --------------------------------------------------------------------------

function renderCreateForm () {
  const { policy, session } = state
  if (policy === null || session === null) return
  const scopes = policy.scopes.filter((scope) => scope.name !== 'admin' || session.admin)
  $('scope-list').replaceChildren(...scopes.map((scope, i) => {
    const id = `scope-${i}`
    return element('div', { class: 'scope' }, [
      element('input', { type: 'checkbox', id, name: 'scopes', value: scope.name, 'aria-describedby': `${id}-description` }),
      element('label', { for: id, text: scope.name }),
      element('p', { id: `${id}-description`, class: 'hint', text: scope.description })
    ])
  }))
  $('token-expiry').replaceChildren(...policy.expiry_presets.map((preset) => {
    const option = element('option', { value: preset.expires_in === null ? 'never' : String(preset.expires_in), text: preset.label })
    if (preset.default) option.selected = true
    return option
  }))
  $('token-expiry-hint').textContent = policy.max_lifetime > 0
    ? `This server allows at most ${duration(policy.max_lifetime)}.`
    : 'This server allows tokens that never expire; prefer a lifetime anyway.'
  const missing = !policy.internal_application
  $('internal-missing').hidden = !missing
  for (const control of $('create-form').elements) control.disabled = missing
}

// ---- start ------------------------------------------------------------------------------------

async function start () {
  $('sign-in-form').addEventListener('submit', (event) => { signIn(event).catch(handleError) })
  $('create-form').addEventListener('submit', (event) => { createToken(event).catch(handleError) })
  $('sign-out').addEventListener('click', () => { signOut().catch(handleError) })
  $('copy').addEventListener('click', () => { copyFresh().catch(handleError) })
  $('fresh-done').addEventListener('click', () => {
    hideFresh()
    announce('The new token is hidden; it cannot be shown again.')
    $('list-title').focus()
  })
  $('older').addEventListener('click', () => {
    if (state.page.links.next !== undefined) loadPage(state.page.links.next, 'older').then(() => $('list-title').focus(), handleError)
  })
  $('newer').addEventListener('click', () => {
    if (state.page.links.prev !== undefined) loadPage(state.page.links.prev, 'newer').then(() => $('list-title').focus(), handleError)
  })

  try {
    ({ data: state.policy } = await api('GET', '/api/v1/token-policy'))
  } catch (error) {
    $('loading').hidden = true
    handleError(error)
    return
  }
  let session
  try {
    ({ data: session } = await api('GET', '/api/v1/session'))
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showSignedOut()
    } else {
      $('loading').hidden = true
      handleError(error)
    }
    return
  }
  await showSignedIn(session).catch(handleError)
}

start()
