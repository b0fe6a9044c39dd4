#!/usr/bin/env node
// The `sot` command. Everything lives in cli/main.ts; this file only runs it.
import { main } from './cli/main.js';

process.exitCode = await main(process.argv.slice(2));
