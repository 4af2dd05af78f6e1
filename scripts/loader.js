#!/usr/bin/env node
// @ts-check
// Post-processes the loader that `napi build --platform` generates (binding.js). It runs after
// every generation (scripts/build.js), so the fixes survive regeneration; running it twice
// changes nothing. If the generated code no longer has the shape these fixes expect, it fails
// loudly rather than ship a loader without them.
//
// 1. A `linux`/`ia32` branch: napi-rs's loader has none, so under a 32-bit x86 Node it would
//    throw "Unsupported architecture on Linux: ia32" even with the package installed. The
//    branch is made from the generated s390x branch (same shape, other names).
// 2. A clear error when no binary fits (musl, an architecture we do not build, a missing
//    optional dependency): the platform, what was tried, and what to do.
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const file = path.join(__dirname, '..', 'binding.js')
let src = fs.readFileSync(file, 'utf8')

/** @param {string} what */
function fail(what) {
  console.error(`loader.js: the generated loader changed shape (${what}); update scripts/loader.js`)
  process.exit(1)
}

// 1. linux/ia32.
if (!src.includes("'./concurrent-hamt.linux-ia32-gnu.node'")) {
  const s390x = /( *)\} else if \(process\.arch === 's390x'\) \{\n([\s\S]*?)\n\1\} else \{\n\1  loadErrors\.push\(new Error\(`Unsupported architecture on Linux/
  const m = s390x.exec(src)
  if (!m || !m[2].includes('linux-s390x-gnu')) {
    fail('no linux s390x branch to copy')
  } else {
    const ia32 = `${m[1]}} else if (process.arch === 'ia32') {\n${m[2].split('linux-s390x-gnu').join('linux-ia32-gnu')}\n`
    const at = m.index + m[0].indexOf(`${m[1]}} else {\n`)
    src = src.slice(0, at) + ia32 + src.slice(at)
  }
}

// 2. The error when nothing loaded.
const generic = /const error = new Error\(\n\s*`Cannot find native binding\. ` \+\n[^\n]*\n[^\n]*\n\s*\)/
if (!src.includes('function noBindingMessage(')) {
  if (!generic.test(src)) {
    fail('no "Cannot find native binding" error to replace')
  }
  src = src.replace(generic, 'const error = new Error(noBindingMessage(loadErrors))')
  src = src.replace(
    'const loadErrors = []\n',
    `const loadErrors = []

// Added by scripts/loader.js: what a user reads when no binary fits this platform.
function noBindingMessage(errors) {
  const platform = process.platform === 'linux'
    ? \`linux-\${process.arch}-\${isMusl() ? 'musl' : 'gnu'}\`
    : \`\${process.platform}-\${process.arch}\`
  const tried = errors
    .map((e) => '  - ' + String((e && e.message) || e).split('\\n')[0])
    .join('\\n')
  return (
    \`concurrent-hamt has no native binary for this platform: \${platform} (Node \${process.version}).\\n\` +
    'Prebuilt binaries: linux-x64-gnu, linux-arm64-gnu, linux-arm-gnueabihf and linux-ia32-gnu ' +
    '(glibc 2.17 or newer), darwin-x64, darwin-arm64, win32-x64-msvc, win32-ia32-msvc, win32-arm64-msvc.\\n' +
    'Tried:\\n' + tried + '\\n' +
    'What to do: if your platform is listed, reinstall without --no-optional/--omit=optional ' +
    '(npm installs the binary as an optional dependency); otherwise build from source: clone the ' +
    'repository and run npm install there (needs Rust, https://rustup.rs), or point ' +
    'NAPI_RS_NATIVE_LIBRARY_PATH at a binary you built.'
  )
}
`,
  )
}

fs.writeFileSync(file, src)
