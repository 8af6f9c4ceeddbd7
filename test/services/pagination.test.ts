import t from 'tap'
import { DEFAULT_PAGE_SIZE } from '../../schemas/listing.js'
import { keysetLinks, newestFirst, pageLinks, planKeyset } from '../../src/services/pagination.js'

const OLD = '01900000-0000-7000-8000-000000000001'
const MID = '01900000-0000-7000-8000-000000000002'
const NEW = '01900000-0000-7000-8000-000000000003'

t.test('planKeyset', async (t) => {
  t.test('no parameters: newest first, default page size, no id bound', async (t) => {
    t.strictSame(planKeyset({}), { id: {}, order: 'desc', limit: DEFAULT_PAGE_SIZE })
    t.equal(DEFAULT_PAGE_SIZE, 20)
  })

  t.test('max_id bounds from above and keeps newest-first order', async (t) => {
    t.strictSame(planKeyset({ max_id: NEW, limit: 5 }), { id: { $lt: NEW }, order: 'desc', limit: 5 })
  })

  t.test('since_id bounds from below and keeps newest-first order (the newest items after it)', async (t) => {
    t.strictSame(planKeyset({ since_id: OLD }), { id: { $gt: OLD }, order: 'desc', limit: DEFAULT_PAGE_SIZE })
  })

  t.test('min_id bounds from below and reads upwards (the items right after it)', async (t) => {
    t.strictSame(planKeyset({ min_id: OLD, limit: 3 }), { id: { $gt: OLD }, order: 'asc', limit: 3 })
  })

  t.test('min_id wins over since_id when both are given', async (t) => {
    t.strictSame(planKeyset({ since_id: OLD, min_id: MID }), { id: { $gt: MID }, order: 'asc', limit: DEFAULT_PAGE_SIZE })
  })

  t.test('max_id with min_id is a window read upwards', async (t) => {
    t.strictSame(planKeyset({ max_id: NEW, min_id: OLD, limit: 2 }), { id: { $lt: NEW, $gt: OLD }, order: 'asc', limit: 2 })
  })

  t.test('max_id with since_id is a window read downwards', async (t) => {
    t.strictSame(planKeyset({ max_id: NEW, since_id: OLD }), { id: { $lt: NEW, $gt: OLD }, order: 'desc', limit: DEFAULT_PAGE_SIZE })
  })
})

t.test('newestFirst', async (t) => {
  t.test('reverses a page read upwards (min_id)', async (t) => {
    const rows = [{ id: OLD }, { id: MID }, { id: NEW }]
    t.strictSame(newestFirst(rows, planKeyset({ min_id: '01800000-0000-7000-8000-000000000000' })), [{ id: NEW }, { id: MID }, { id: OLD }])
  })

  t.test('leaves a page read downwards untouched', async (t) => {
    const rows = [{ id: NEW }, { id: MID }, { id: OLD }]
    t.strictSame(newestFirst(rows, planKeyset({ max_id: 'ffffffff-0000-7000-8000-000000000000' })), [{ id: NEW }, { id: MID }, { id: OLD }])
    t.strictSame(newestFirst(rows, planKeyset({})), [{ id: NEW }, { id: MID }, { id: OLD }])
  })

  t.test('an empty page stays empty in either order', async (t) => {
    t.strictSame(newestFirst([], planKeyset({ min_id: OLD })), [])
    t.strictSame(newestFirst([], planKeyset({})), [])
  })
})

t.test('keysetLinks', async (t) => {
  t.test('an empty page has no links (and so no Link header)', async (t) => {
    t.equal(keysetLinks([], 10), null)
  })

  t.test('next goes below the oldest item, prev above the newest, both with the limit', async (t) => {
    t.strictSame(keysetLinks([{ id: NEW }, { id: MID }, { id: OLD }], 3), {
      next: { max_id: OLD, limit: '3' },
      prev: { min_id: NEW, limit: '3' }
    })
  })

  t.test('a one-item page points both ways from that item', async (t) => {
    t.strictSame(keysetLinks([{ id: MID }], 80), {
      next: { max_id: MID, limit: '80' },
      prev: { min_id: MID, limit: '80' }
    })
  })
})

t.test('pageLinks', async (t) => {
  t.test('no items: one (empty) page, first and last only', async (t) => {
    t.strictSame(pageLinks(1, 20, 0), {
      first: { page: '1', limit: '20' },
      last: { page: '1', limit: '20' }
    })
  })

  t.test('exactly one full page: first and last only', async (t) => {
    t.strictSame(pageLinks(1, 10, 10), {
      first: { page: '1', limit: '10' },
      last: { page: '1', limit: '10' }
    })
  })

  t.test('one item over a full page makes a second page', async (t) => {
    t.strictSame(pageLinks(1, 10, 11), {
      first: { page: '1', limit: '10' },
      last: { page: '2', limit: '10' },
      next: { page: '2', limit: '10' }
    })
  })

  t.test('a middle page has all four relations', async (t) => {
    t.strictSame(pageLinks(2, 10, 25), {
      first: { page: '1', limit: '10' },
      last: { page: '3', limit: '10' },
      next: { page: '3', limit: '10' },
      prev: { page: '1', limit: '10' }
    })
  })

  t.test('the last page has prev but no next', async (t) => {
    t.strictSame(pageLinks(3, 10, 25), {
      first: { page: '1', limit: '10' },
      last: { page: '3', limit: '10' },
      prev: { page: '2', limit: '10' }
    })
  })

  t.test('a page past the end points prev at the last page, not at a missing one', async (t) => {
    t.strictSame(pageLinks(9, 10, 25), {
      first: { page: '1', limit: '10' },
      last: { page: '3', limit: '10' },
      prev: { page: '3', limit: '10' }
    })
  })

  t.test('a page past the end of an empty list points prev at page 1', async (t) => {
    t.strictSame(pageLinks(4, 20, 0), {
      first: { page: '1', limit: '20' },
      last: { page: '1', limit: '20' },
      prev: { page: '1', limit: '20' }
    })
  })
})
