#!/usr/bin/env node
'use strict';
/* eslint-disable @typescript-eslint/no-require-imports */
// The installed command: runs the compiled CLI from dist/ (npm run build makes it).
const path = require('node:path');
const fs = require('node:fs');

const entry = path.join(__dirname, '..', 'dist', 'src', 'cli', 'billing-admin.js');
if (!fs.existsSync(entry)) {
  process.stderr.write('billing-admin: not built yet. Run `npm run build` first, or use `npm run --silent billing-admin -- <command>` (through tsx).\n');
  process.exit(64);
}
require(entry).main();
