#!/usr/bin/env node
// @ts-check
// Builds the package in a source checkout: the native addon (release mode, for this machine)
// with its generated loader and types (binding.js, binding.d.ts), then the TypeScript layer
// (index.js, index.d.ts) and the tests, examples and benchmarks (build/).
//
// It runs as the `prepare` script, so `npm install` in a clone builds everything. Installing
// the published package never runs it: that package ships prebuilt binaries, and npm does not
// run `prepare` for registry installs (and there is no crates/ folder there anyway).
//
//   node scripts/build.js           # release addon + TypeScript
//   node scripts/build.js --debug   # debug addon + TypeScript
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const debug = process.argv.includes('--debug')

/** @param {string} cmd @param {string[]} args */
function run(cmd, args) {
  console.log(`build: ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' })
  if (r.error) {
    throw r.error
  }
  if (r.status !== 0) {
    console.error(`build: '${cmd} ${args.join(' ')}' failed (exit ${r.status})`)
    process.exit(r.status ?? 1)
  }
}

if (!fs.existsSync(path.join(root, 'crates', 'node', 'Cargo.toml'))) {
  console.log('build: not a source checkout (no crates/node); nothing to build')
  process.exit(0)
}
if (spawnSync('cargo', ['--version']).status !== 0) {
  console.error(
    'build: building concurrent-hamt from source needs Rust: install it with rustup ' +
      '(https://rustup.rs), then run npm install again',
  )
  process.exit(1)
}

const bin = path.join(root, 'node_modules', '.bin')
run(path.join(bin, 'napi'), [
  'build',
  '--platform',
  ...(debug ? [] : ['--release']),
  '--manifest-path',
  'crates/node/Cargo.toml',
  '--package-json-path',
  'package.json',
  '--output-dir',
  '.',
  '--js',
  'binding.js',
  '--dts',
  'binding.d.ts',
])
run(process.execPath, [path.join(root, 'scripts', 'loader.js')])
run(path.join(bin, 'tsc'), ['-p', 'tsconfig.json'])
run(path.join(bin, 'tsc'), ['-p', 'tsconfig.test.json'])
