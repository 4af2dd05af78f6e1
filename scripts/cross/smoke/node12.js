// @ts-check
// The worker-sharing part alone, with a plain runner (Node 12 has no node:test).
'use strict'
const { sharedByWorkers, handOffAndRelease } = require('./sharing.js')

async function main() {
  for (const [name, f] of /** @type {const} */ ([['shared by workers', sharedByWorkers], ['hand-off and release', handOffAndRelease]])) {
    await f()
    console.log(`ok - ${name}`)
  }
  console.log(`smoke (sharing part): passed on Node ${process.version} ${process.arch}`)
}
main().catch((e) => {
  console.error('not ok -', e)
  process.exit(1)
})
