#!/usr/bin/env node
// @ts-check
// Checks that the root package and the per-platform packages under npm/ agree (napi-rs
// layout): every target of package.json's napi config has its package, with the root's
// version and engines, `os`/`cpu` (and `libc` on Linux) for npm to pick it, `main` and
// `files` naming its binary; and the root lists each as an optional dependency at the same
// version. `npm run typecheck` runs it; it prints what is wrong and fails.
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
/** @param {string} p @returns {Record<string, any>} */
const read = (p) => JSON.parse(fs.readFileSync(path.join(root, p), 'utf8'))
const pkg = read('package.json')
/** @type {string[]} */
const problems = []

/** Rust target -> npm platform, as napi-rs names them. @param {string} t */
function platformOf(t) {
  const [arch, , os, abi] = t.split('-')
  const cpu = { x86_64: 'x64', aarch64: 'arm64', armv7: 'arm', i686: 'ia32' }[arch ?? '']
  const system = { linux: 'linux', darwin: 'darwin', windows: 'win32' }[os ?? '']
  if (!cpu || !system) {
    problems.push(`unknown napi target ${t}`)
    return { name: '', cpu: '', os: '', libc: undefined }
  }
  const suffix = system === 'linux' ? (abi === 'gnueabihf' ? '-gnueabihf' : '-gnu') : system === 'win32' ? '-msvc' : ''
  return { name: `${system}-${cpu}${suffix}`, cpu, os: system, libc: system === 'linux' ? 'glibc' : undefined }
}

const targets = /** @type {string[]} */ (pkg.napi.targets)
const expected = new Set()
for (const t of targets) {
  const p = platformOf(t)
  if (!p.name) continue
  const name = `${pkg.napi.binaryName}-${p.name}`
  expected.add(name)
  const file = `npm/${p.name}/package.json`
  if (!fs.existsSync(path.join(root, file))) {
    problems.push(`${file} is missing (napi create-npm-dirs makes it)`)
    continue
  }
  const sub = read(file)
  const binary = `${pkg.napi.binaryName}.${p.name}.node`
  const want = {
    name,
    version: pkg.version,
    main: binary,
    files: [binary],
    os: [p.os],
    cpu: [p.cpu],
    ...(p.libc ? { libc: [p.libc] } : {}),
    engines: pkg.engines,
    license: pkg.license,
  }
  for (const [k, v] of Object.entries(want)) {
    if (JSON.stringify(sub[k]) !== JSON.stringify(v)) {
      problems.push(`${file}: ${k} is ${JSON.stringify(sub[k])}, expected ${JSON.stringify(v)}`)
    }
  }
  if (pkg.optionalDependencies?.[name] !== pkg.version) {
    problems.push(`package.json: optionalDependencies["${name}"] should be "${pkg.version}"`)
  }
}
for (const name of Object.keys(pkg.optionalDependencies ?? {})) {
  if (!expected.has(name)) problems.push(`package.json: optionalDependencies has ${name}, which no napi target builds`)
}
for (const dir of fs.readdirSync(path.join(root, 'npm'))) {
  if (!expected.has(`${pkg.napi.binaryName}-${dir}`)) problems.push(`npm/${dir} belongs to no napi target`)
}

if (problems.length) {
  console.error('check-packages: the platform packages disagree with package.json:\n  ' + problems.join('\n  '))
  process.exit(1)
}
console.log(`check-packages: ${expected.size} platform packages agree with the root (version ${pkg.version})`)
